# Warnings are errors in everything mproc builds; sanitizers are chosen by MPROC_SANITIZE.
function(mproc_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()

function(mproc_sanitize target)
  if(MPROC_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=${MPROC_SANITIZE} -fno-omit-frame-pointer -g)
    target_link_options(${target} PUBLIC -fsanitize=${MPROC_SANITIZE})
    if(MPROC_SANITIZE MATCHES "thread" AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      # Asio uses std::atomic_thread_fence, which GCC's TSan cannot model; it warns (-Wtsan).
      target_compile_options(${target} PUBLIC -Wno-tsan)
    endif()
  endif()
endfunction()
