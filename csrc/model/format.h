/*
 * model/format.h: the .rnnx format's constants, written once: the C reader
 * (csrc/model/reader.c) reads them here, and the Python writer
 * (rnnx/rnnx_format.py) through rnnx._core.FORMAT, which the binding builds
 * from this header.  The format is described in docs/rnnx-format.md.
 */
#ifndef RNNX_MODEL_FORMAT_H
#define RNNX_MODEL_FORMAT_H

#define RNNX_FORMAT_MAGIC "RNNX\r\n\x1a\n"  /* 8 bytes, no NUL among them */

enum {
    RNNX_FORMAT_VERSION_MIN = 1,   /* versions read: 1; 2 (adds the Embedding kind and
                                      RNNX_FORMAT_FLAG_LAST_OUTPUT); 3 (adds int8 and
                                      bfloat16 weights, a descriptor's weights field) */
    RNNX_FORMAT_VERSION = 3,
    RNNX_FORMAT_HEADER_BYTES = 64,
    RNNX_FORMAT_DESCRIPTOR_BYTES = 32,
    RNNX_FORMAT_TENSOR_ALIGN = 64,
    RNNX_FORMAT_MAX_LAYERS = 256,         /* entries of the layer table */
    RNNX_FORMAT_MAX_STACK = 64,           /* num_layers of one recurrent layer */
    RNNX_FORMAT_MAX_SIZE = 1 << 24,       /* any one dimension */
    RNNX_FORMAT_FLAG_MANY_TO_ONE = 1,
    RNNX_FORMAT_FLAG_BARE_LAYER = 2,      /* Python only: load returns the layer, not a Sequential */
    RNNX_FORMAT_FLAG_LAST_OUTPUT = 4,     /* with FLAG_MANY_TO_ONE: RNNX_MANY_TO_ONE_OUTPUT; version 2 */
    RNNX_FORMAT_KNOWN_FLAGS = 7,
    /* version 3: a recurrent descriptor's last field, its weights' storage
     * (enum rnnx_weights of rnnx_model.h: RNNX_WEIGHTS_FLOAT, _INT8, _BFLOAT16), and a
     * recurrent descriptor's seventh (0 before), an LSTM's proj_size */
    RNNX_FORMAT_VERSION_WEIGHTS = 3
};

#endif /* RNNX_MODEL_FORMAT_H */
