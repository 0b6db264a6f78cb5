//! The exception hierarchy: `E5Error` ⊃ `ModelError` (a model file or directory is missing
//! or invalid), `InputError` (a text cannot be embedded) and
//! `OptionsError` (a bad argument).

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(e5, E5Error, PyException, "Base class of every error raised by e5.");
pyo3::create_exception!(e5, ModelError, E5Error, "A model file or directory is missing, unreadable or invalid.");
pyo3::create_exception!(e5, InputError, E5Error, "An input text cannot be embedded.");
pyo3::create_exception!(e5, OptionsError, E5Error, "An argument is out of range or unknown.");

pub fn options_error(msg: String) -> PyErr {
    OptionsError::new_err(msg)
}

fn input_error(msg: String) -> PyErr {
    InputError::new_err(msg)
}

/// The Python exception for a library error; `base` shifts an input index within a batch to
/// the index within the caller's list.
pub fn to_py(e: e5::Error, base: usize) -> PyErr {
    match e {
        e5::Error::Input { index, message } => input_error(format!("input {}: {message}", base + index)),
        e5::Error::Options(_) | e5::Error::Isa(_) => options_error(e.to_string()),
        _ => ModelError::new_err(e.to_string()),
    }
}
