# Runs one example and checks what it says:
#   cmake -P check_example.cmake -- <program> [<regex>...]
# Passes when the program exits with 0 and its output (stdout then stderr) matches every regex;
# a regex written "!<regex>" must not match.
# (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit status.)
if(CMAKE_ARGC LESS 5 OR NOT CMAKE_ARGV3 STREQUAL "--")
  message(FATAL_ERROR "usage: cmake -P check_example.cmake -- <program> [<regex>...]")
endif()
set(program "${CMAKE_ARGV4}")
execute_process(COMMAND "${program}" RESULT_VARIABLE status OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}${err}")
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "${program} exited with ${status}")
endif()
math(EXPR last "${CMAKE_ARGC} - 1")
if(last GREATER_EQUAL 5)
  foreach(i RANGE 5 ${last})
    set(re "${CMAKE_ARGV${i}}")
    if(re MATCHES "^!")
      string(SUBSTRING "${re}" 1 -1 re)
      if("${out}${err}" MATCHES "${re}")
        message(FATAL_ERROR "the output matches what it must not: ${re}")
      endif()
    elseif(NOT "${out}${err}" MATCHES "${re}")
      message(FATAL_ERROR "the output does not match: ${re}")
    endif()
  endforeach()
endif()
