# RNNX_CORE_SOURCES: the C files of the core: every csrc/*.c that no other
# csrc/*.c #includes.  The cell files (rnn.c, ...; csrc/kernels/ and csrc/driver/ are not globbed) are compiled as
# part of the per-dtype (and per-ISA) kernel files that #include them, so they
# are left out; a file added to the core is picked up without editing this.
# model.c (the model layer) is listed by the caller.
file(GLOB _rnnx_all_c RELATIVE "${CMAKE_CURRENT_SOURCE_DIR}" "${CMAKE_CURRENT_SOURCE_DIR}/csrc/*.c")
set(_rnnx_included)
foreach(_file ${_rnnx_all_c})
  file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/${_file}" _lines REGEX "^[ \t]*#[ \t]*include[ \t]+\"[^\"]+\\.c\"")
  foreach(_line ${_lines})
    string(REGEX REPLACE ".*\"([^\"]+\\.c)\".*" "csrc/\\1" _inc "${_line}")
    list(APPEND _rnnx_included "${_inc}")
  endforeach()
endforeach()
set(RNNX_CORE_SOURCES ${_rnnx_all_c})
list(REMOVE_ITEM RNNX_CORE_SOURCES csrc/model.c ${_rnnx_included})
list(SORT RNNX_CORE_SOURCES)
if(NOT RNNX_CORE_SOURCES)
  message(FATAL_ERROR "cmake/RnnxSources.cmake: no core sources found in csrc/")
endif()
message(STATUS "rnnx core sources: ${RNNX_CORE_SOURCES}")
