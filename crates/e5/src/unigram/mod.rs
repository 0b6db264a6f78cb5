//! Placeholder until the compact Unigram tokenizer lands.
