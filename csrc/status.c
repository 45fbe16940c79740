/*
 * status.c: rnnx_strerror, a sentence for every status code of the core
 * (rnnx.h) and of the model layer (rnnx_model.h).  In every build: the C
 * library and the Python extension (whose error messages use it).
 */
#include "rnnx.h"
#include "rnnx_model.h"

const char* rnnx_strerror(int status)
{
    switch (status) {
    case RNNX_OK:
        return "ok";
    case RNNX_EINVAL:
        return "an argument is out of range (a dimension, cell, dtype, length, stride or id)";
    case RNNX_ENULL:
        return "a required pointer is NULL";
    case RNNX_ECELL:
        return "unknown cell code";
    case RNNX_ESIZE:
        return "the sizes are too large for the core's index types";
    case RNNX_EISA:
        return "the instruction set asked for is not built in or does not run on this CPU";
    case RNNX_EPROJ:
        return "proj_size must be 0, or 0 < proj_size < hidden_size on an LSTM";
    case RNNX_EPEEPHOLE:
        return "peepholes are for an LSTM only";
    case RNNX_EMAGIC:
        return "not an .rnnx model: the magic bytes differ";
    case RNNX_EVERSION:
        return "the .rnnx format version is not supported by this library";
    case RNNX_ETRUNCATED:
        return "the .rnnx data is truncated: shorter than its header says";
    case RNNX_ECHECKSUM:
        return "the CRC-32 of the .rnnx data does not match: the bytes were altered";
    case RNNX_ECORRUPT:
        return "the .rnnx data is corrupt: a field is out of range or the layers do not fit";
    case RNNX_ENOMEM:
        return "the memory handed in is smaller than the size function gives";
    case RNNX_EALIGN:
        return "a buffer is not aligned to 8 bytes";
    case RNNX_EIO:
        return "the file cannot be opened or read";
    case RNNX_EUNSUPPORTED:
        return "the model cannot do this (a bidirectional layer cannot stream; a big-endian "
               "host cannot use .rnnx tensors in place)";
    default:
        return "unknown rnnx status code";
    }
}
