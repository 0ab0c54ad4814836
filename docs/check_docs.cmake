# Builds the API reference and checks its warnings: cmake -DDOXYGEN=<doxygen> -DDOXYFILE=<Doxyfile>
#   -DWARNINGS=<its WARN_LOGFILE> -DCOMPLETE=<docs/documented_headers.txt> -DSOURCE_DIR=<xtape> -P check_docs.cmake
#
# Note [Documentation warnings]
# Every warning about the documentation itself (a bad command, a broken reference, a parse
# problem) fails, in every public header. An undocumented class or function fails in the headers
# listed in docs/documented_headers.txt, whose every class and function has its one-line summary
# (today every public header); a header not listed yet, such as a new one, has its undocumented
# items counted and printed, not failed, until it is completed and added to the list. Undocumented
# data members and enum values are not counted: an options struct's fields are described by the
# class that takes it. Doxygen 1.9 repeats the warning of an undocumented base member once per
# class that inherits it (one missing summary in Layer gave 64 lines, one per layer class), so a
# long list of identical warnings usually means one missing base summary; an override without
# its own comment inherits the base's (INHERIT_DOCS).
file(REMOVE ${WARNINGS})
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${DOXYGEN} ${DOXYFILE} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
string(TIMESTAMP t1 "%s")
math(EXPR seconds "${t1} - ${t0}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "doxygen failed (${rc}):\n${err}")
endif()
file(STRINGS ${COMPLETE} complete REGEX "^[^#]")
set(text "")
if(EXISTS ${WARNINGS})
  file(READ ${WARNINGS} text)
endif()
string(REPLACE "\n" ";" lines "${text}")
set(failures "")
set(remaining 0)
set(remaining_files "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "warning:")
    continue() # a continuation line of the warning before
  endif()
  string(REPLACE "${SOURCE_DIR}/" "" line "${line}")
  string(REGEX REPLACE ":.*" "" file "${line}")
  if(line MATCHES "is not documented")
    if(line MATCHES "\\((variable|enumvalue|typedef)\\)")
      continue()
    endif()
    list(FIND complete "${file}" at)
    if(at EQUAL -1)
      math(EXPR remaining "${remaining} + 1")
      list(APPEND remaining_files ${file})
      continue()
    endif()
  endif()
  string(APPEND failures "${line}\n")
endforeach()
list(REMOVE_DUPLICATES remaining_files)
list(LENGTH remaining_files n_files)
list(LENGTH complete n_complete)
message(STATUS "docs: doxygen took ${seconds} s; ${n_complete} headers fully documented; ${remaining} "
               "undocumented classes and functions remain in ${n_files} other headers")
if(failures)
  message(FATAL_ERROR "documentation warnings (Note [Documentation warnings] in docs/check_docs.cmake):\n${failures}")
endif()
