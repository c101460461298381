# Warnings are errors in everything mproc builds; sanitizers are chosen by MPROC_SANITIZE.
function(mproc_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

function(mproc_sanitize target)
  if(MPROC_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=${MPROC_SANITIZE} -fno-omit-frame-pointer -g)
    target_link_options(${target} PUBLIC -fsanitize=${MPROC_SANITIZE})
  endif()
endfunction()
