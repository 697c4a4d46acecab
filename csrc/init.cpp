// The inpaint_fast::_C extension module.
//
// Importing `inpaint_fast._C` from Python loads this shared library, which runs the static
// operator registrations (TORCH_LIBRARY / TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL) of every
// file in csrc/. The Python module itself is empty: all operators are reached through
// torch.ops.inpaint_fast.<op> (the pattern of pytorch/extension-cpp).
//
// The CMake build for C++ users defines INPAINT_FAST_NO_PYTHON: the library then has no Python
// entry point and needs no Python headers; loading it (linking or dlopen) registers the ops.

#ifndef INPAINT_FAST_NO_PYTHON
#include <Python.h>
#endif

#include <string>

#include <torch/library.h>

#include "common/cpu_dispatch.h"

namespace inpaint_fast {

// The build passes -DINPAINT_FAST_VERSION=<__version__ of inpaint_fast/__init__.py> (setup.py and
// CMakeLists.txt both read it there), unquoted so that no shell quoting is involved.
#ifndef INPAINT_FAST_VERSION
#define INPAINT_FAST_VERSION 0+unknown
#endif
#define INPAINT_FAST_STR_(x) #x
#define INPAINT_FAST_STR(x) INPAINT_FAST_STR_(x)

std::string version() {
  return INPAINT_FAST_STR(INPAINT_FAST_VERSION);
}

// The torch the build compiled against (setup.py passes -DINPAINT_FAST_TORCH_VERSION=<torch.__version__>),
// as a marker that inpaint_fast/ops/library.py reads from the binary when the library fails to load
// (e.g. built for another torch): "inpaint_fast built with torch <version>".
#ifndef INPAINT_FAST_TORCH_VERSION
#define INPAINT_FAST_TORCH_VERSION unknown
#endif
extern "C" __attribute__((used, visibility("default"))) const char inpaint_fast_built_with_torch[] =
    "inpaint_fast built with torch " INPAINT_FAST_STR(INPAINT_FAST_TORCH_VERSION);

// The instruction-set level the CPU hot loops run at in this process, in torch's names: "default",
// "avx2" or "avx512" (common/cpu_dispatch.h).
std::string cpu_capability() {
  return cpu_level_name(cpu_level());
}

}  // namespace inpaint_fast

// The one TORCH_LIBRARY block of the namespace; every op file adds its schemas with
// TORCH_LIBRARY_FRAGMENT(inpaint_fast, m).
TORCH_LIBRARY(inpaint_fast, m) {
  // version() and cpu_capability() take no tensors, so they are registered as catch-all kernels
  // (callable with no dispatch key to dispatch on).
  m.def("version() -> str", &inpaint_fast::version);
  m.def("cpu_capability() -> str", &inpaint_fast::cpu_capability);
}

#ifndef INPAINT_FAST_NO_PYTHON
extern "C" {
// An empty module: importing it only loads this library (and so runs the registrations above).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",  // name
      "inpaint_fast compiled operators; use torch.ops.inpaint_fast.<op>.",  // doc
      -1,    // per-interpreter state size (-1: no sub-interpreter support)
      nullptr,  // methods: none
  };
  return PyModule_Create(&module_def);
}
}
#endif
