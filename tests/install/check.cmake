# ctest's install_consumer: installs the build tree into a scratch prefix, checks that the
# exported target carries none of the build machine's code-generation flags (-march=native in
# INTERFACE_COMPILE_OPTIONS made consumers' binaries die with SIGILL on older CPUs), then
# configures, builds and runs tests/install/ against it.
# Arguments: -DBUILD_DIR=<xtape build tree> -DSOURCE_DIR=<tests/install> -DWORK_DIR=<scratch>
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()
file(GLOB targets ${WORK_DIR}/prefix/lib/cmake/xtape/xtapeTargets*.cmake)
foreach(f ${targets})
  file(READ ${f} text)
  foreach(flag -march -mtune -fno-tree-slp-vectorize -fno-math-errno)
    string(FIND "${text}" "${flag}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${f} exports the build flag ${flag} to consumers")
    endif()
  endforeach()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build
                -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer against the installed xtape failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer against the installed xtape failed")
endif()
execute_process(COMMAND ${WORK_DIR}/build/consumer RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer failed (${rc})")
endif()
