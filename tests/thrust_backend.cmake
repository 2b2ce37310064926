# Tests of the Thrust backend (volfeat/backend/thrust.hpp), included from tests/CMakeLists.txt.
#   Thrust-OMP (VOLFEAT_WITH_THRUST_OMP): test_primitives_thrust, test_densenet_thrust and
#   test_tensor_core_emulated (the CUDA tensor-core kernel on the host), run by ctest.
#   CUDA (VOLFEAT_WITH_CUDA): the same two sources compiled by nvcc as test_primitives_cuda and
#   test_densenet_cuda (label "cuda"); without a GPU they exit 77 (skipped) and say why.
#   Always: static_assert_* tests that compile a file that must fail with volfeat's message.

if(VOLFEAT_WITH_THRUST_OMP)
  volfeat_add_test(test_primitives_thrust SOURCES test_primitives_thrust.cpp LIBS volfeat::thrust_omp LABELS thrust)
  # The CUDA tensor-core conv kernel's own source on the host (tests/support/wmma_emulation.hpp): its
  # indexing and arithmetic proven where no GPU exists. #pragma unroll is nvcc's; g++ ignores it.
  volfeat_add_test(test_tensor_core_emulated SOURCES test_tensor_core_emulated.cpp LIBS volfeat::thrust_omp
                   LABELS thrust)
  target_compile_options(test_tensor_core_emulated PRIVATE -Wno-unknown-pragmas)
  volfeat_add_test(test_densenet_thrust SOURCES test_densenet_thrust.cpp FIXTURES torch_fx
                   LIBS volfeat::thrust_omp volfeat_nifti volfeat_png LABELS thrust)
endif()

if(VOLFEAT_WITH_CUDA)
  # A .cpp can hold one LANGUAGE per directory, so nvcc compiles a generated .cu that includes it.
  function(volfeat_add_cuda_test name source)
    cmake_parse_arguments(ARG "" "" "FIXTURES;LIBS" ${ARGN})
    set(cu ${CMAKE_CURRENT_BINARY_DIR}/cuda/${name}.cu)
    file(CONFIGURE OUTPUT ${cu} CONTENT "#include \"${CMAKE_CURRENT_SOURCE_DIR}/${source}\"\n")
    add_executable(${name} ${cu})
    # The Cpu kernels (the tests' reference) from volfeat_kernels: nvcc need not compile them again.
    target_link_libraries(${name} PRIVATE volfeat::volfeat volfeat::cuda Boost::unit_test_framework ${ARG_LIBS}
      $<TARGET_NAME_IF_EXISTS:volfeat_kernels>)
    target_compile_definitions(${name} PRIVATE BOOST_TEST_DYN_LINK
      VOLFEAT_TEST_DATA="${VOLFEAT_TEST_DATA}" VOLFEAT_SHARED_DIR="${VOLFEAT_SHARED_DIR}"
      VOLFEAT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    add_test(NAME ${name} COMMAND ${name} --log_level=message)
    set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS cuda)
    if(ARG_FIXTURES)
      set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${ARG_FIXTURES}")
    endif()
  endfunction()
  volfeat_add_cuda_test(test_primitives_cuda test_primitives_thrust.cpp)
  volfeat_add_cuda_test(test_densenet_cuda test_densenet_thrust.cpp FIXTURES torch_fx LIBS volfeat_nifti volfeat_png)
endif()

# An op used with a backend that has no specialization must fail to compile, with a message that
# says what to enable. The test passes when the compiler's output contains that message. (Only a
# compiler runs: nothing for the sanitizers to see, so the sanitizer suite leaves it out.)
if(NOT VOLFEAT_SANITIZE)
find_path(VOLFEAT_EIGEN_INCLUDE_DIR Eigen/Core PATHS ${EIGEN3_INCLUDE_DIRS} PATH_SUFFIXES eigen3)
foreach(case 1 2)
  set(name static_assert_unsupported_backend_${case})
  add_test(NAME ${name}
           COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -fsyntax-only -DVOLFEAT_CASE=${case}
                   -I${PROJECT_SOURCE_DIR}/include -isystem ${VOLFEAT_EIGEN_INCLUDE_DIR}
                   ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/unsupported_backend.cpp)
  set_tests_properties(${name} PROPERTIES
    PASS_REGULAR_EXPRESSION "volfeat: [A-Za-z0-9]+ has no specialization for this Backend.*VOLFEAT_WITH_THRUST_OMP / VOLFEAT_WITH_CUDA"
    FAIL_REGULAR_EXPRESSION "error: #error")
endforeach()
endif()
