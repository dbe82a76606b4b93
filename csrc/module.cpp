// The Python module lcnet_fast._C: empty except for WITH_CUDA. Importing it loads
// the shared library, whose static initialisers register the ops with torch.
// Limited Python API only, so one wheel serves every CPython >= 3.9.
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT,
      "_C",
      "lcnet_fast custom ops (registered under torch.ops.lcnet_fast)",
      -1,
      NULL,
  };
  PyObject* m = PyModule_Create(&module_def);
  if (m == NULL) {
    return NULL;
  }
#ifdef LCNET_FAST_WITH_CUDA
  const long with_cuda = 1;
#else
  const long with_cuda = 0;
#endif
  if (PyModule_AddIntConstant(m, "WITH_CUDA", with_cuda) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
}
