# RNNX_CORE_SOURCES: the C files of the core, read from setup.py's Extension
# sources (every "csrc/NAME.c" it names), so the C library and the Python
# extension compile the same list; the cell files (common.c, rnn.c, ...) are
# #included by kernels_f32.c/kernels_f64.c and are not compiled on their own.
file(READ "${CMAKE_CURRENT_SOURCE_DIR}/setup.py" _rnnx_setup_py)
string(REGEX MATCH "sources=\\[[^]]*\\]" _rnnx_sources_line "${_rnnx_setup_py}")
string(REGEX MATCHALL "csrc/[A-Za-z0-9_]+\\.c" RNNX_CORE_SOURCES "${_rnnx_sources_line}")
if(NOT RNNX_CORE_SOURCES)
  message(FATAL_ERROR "cmake/RnnxSources.cmake: no csrc/*.c found in setup.py's sources=[...]")
endif()
list(REMOVE_DUPLICATES RNNX_CORE_SOURCES)
message(STATUS "rnnx core sources (from setup.py): ${RNNX_CORE_SOURCES}")
