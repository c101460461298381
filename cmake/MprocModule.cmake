# One module of the library: an OBJECT library with its own include/ (public, to the modules
# above it) and src/ (private to it). Modules link one way — serialize <- runtime <- worker <-
# pool, and the Manager (runtime/manager) above runtime — so a lower module that includes a
# higher one's header does not compile (tests/layering checks that this stays so). The installed
# libmproc.a is the objects of every module (the aggregate target mproc in CMakeLists.txt).
#
#   mproc_module(NAME <name> SOURCES <files...> [DEPENDS <modules...>] [PRIVATE <libraries...>]
#                [PUBLIC <libraries...>])
function(mproc_module)
  cmake_parse_arguments(M "" "NAME" "SOURCES;DEPENDS;PRIVATE;PUBLIC" ${ARGN})
  set(target mproc_${M_NAME})
  add_library(${target} OBJECT ${M_SOURCES})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_features(${target} PUBLIC cxx_std_20)
  list(TRANSFORM M_DEPENDS PREPEND mproc_)
  target_link_libraries(${target} PUBLIC ${M_DEPENDS} ${M_PUBLIC} PRIVATE ${M_PRIVATE})
  mproc_warnings(${target})
  mproc_sanitize(${target})
  set_property(GLOBAL APPEND PROPERTY MPROC_MODULE_TARGETS ${target})
  set_property(GLOBAL APPEND PROPERTY MPROC_MODULE_INCLUDE_DIRS ${CMAKE_CURRENT_SOURCE_DIR}/include)
endfunction()
