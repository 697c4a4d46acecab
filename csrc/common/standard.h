// Every translation unit is C++20, host and nvcc alike (setup.py and CMakeLists.txt pass -std=c++20
// to both). The checks in csrc/ops/<op>.h are inline functions compiled into CPU (g++) and CUDA (nvcc)
// objects; compiled under two standards they would be one function with two definitions (an ODR
// violation the linker resolves silently). Included by those headers (directly or through common/checks.h), this
// fails such a build.
#pragma once

static_assert(__cplusplus == 202002L, "inpaint_fast is compiled as C++20 (-std=c++20), host and nvcc alike");
