"""Build lcnet_fast and its extension lcnet_fast._C.

C++ CPU kernels are always built, against PyTorch's stable ABI (torch/csrc/stable,
TORCH_TARGET_VERSION = 2.10), so one build loads in torch 2.10 .. 2.14 and compiles
in seconds instead of the ~11 minutes that <torch/extension.h> costs here.

CUDA kernels (csrc/cuda) are added when a CUDA toolkit and a CUDA build of torch are
present and a GPU is visible, or when LCNET_FAST_FORCE_CUDA=1 (then they must compile
without a GPU, for TORCH_CUDA_ARCH_LIST or, if unset, "9.0+PTX"; CI does this).
LCNET_FAST_NO_EXTENSION=1 skips the extension (pure-PyTorch install); set at run time
it also keeps an already built lcnet_fast._C from being loaded (lcnet_fast/ops/_backend.py).
Check what a build produced with lcnet_fast.build_info() (.ci/run fails unless the extension
and, under LCNET_FAST_FORCE_CUDA=1, its CUDA kernels are there).
"""
import glob
import os
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
TORCH_TARGET_VERSION = "0x020a000000000000"  # stable ABI of torch 2.10


def _env_flag(name):
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def _default_cuda_home():
    # torch guesses CUDA_HOME from `which nvcc`; a /usr/local/bin/nvcc wrapper script
    # makes that /usr/local, which has no CUDA headers. Prefer the real toolkit.
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    for cand in ("/usr/local/cuda",):
        if os.path.exists(os.path.join(cand, "bin", "nvcc")):
            os.environ["CUDA_HOME"] = cand
            return
    nvcc = shutil.which("nvcc")
    if nvcc:
        with open(nvcc, "rb") as f:
            head = f.read(4096)
        for tok in head.split():
            if tok.endswith(b"/bin/nvcc") and os.path.exists(tok):
                os.environ["CUDA_HOME"] = os.path.dirname(os.path.dirname(tok.decode()))
                return


def _wheel_cuda_includes():
    """CUDA library headers shipped in the CUDA torch wheel (nvidia/cu*/include)."""
    try:
        import nvidia  # noqa: F401  (namespace package from the nvidia-* wheels)
    except ImportError:
        return []
    dirs = []
    for base in getattr(nvidia, "__path__", []):
        dirs += sorted(glob.glob(os.path.join(base, "cu*", "include")))
    return dirs


def _use_cuda():
    """(bool, reason) for compiling csrc/cuda."""
    import torch
    from torch.utils import cpp_extension

    forced = _env_flag("LCNET_FAST_FORCE_CUDA")
    if torch.version.cuda is None:
        if forced:
            raise RuntimeError("LCNET_FAST_FORCE_CUDA=1 but this torch is not a CUDA build")
        return False, "torch is not a CUDA build"
    if cpp_extension.CUDA_HOME is None:
        if forced:
            raise RuntimeError("LCNET_FAST_FORCE_CUDA=1 but no CUDA toolkit (nvcc) was found")
        return False, "no CUDA toolkit found"
    if forced:
        return True, "LCNET_FAST_FORCE_CUDA=1"
    if not torch.cuda.is_available():
        return False, "no CUDA device visible (set LCNET_FAST_FORCE_CUDA=1 to build anyway)"
    return True, "CUDA device visible"


def get_extensions():
    if _env_flag("LCNET_FAST_NO_EXTENSION"):
        print("lcnet_fast: LCNET_FAST_NO_EXTENSION=1, building no extension")
        return [], {}
    _default_cuda_home()
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    debug = _env_flag("LCNET_FAST_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + [
        "-std=c++17",
        f"-DTORCH_TARGET_VERSION={TORCH_TARGET_VERSION}",
    ]
    sources = ["csrc/module.cpp", "csrc/ops.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    use_cuda, why = _use_cuda()
    print(f"lcnet_fast: CUDA kernels {'ON' if use_cuda else 'OFF'} ({why})")
    # py_limited_api: torch adds -DPy_LIMITED_API; csrc/module.cpp uses only that API
    kwargs = dict(py_limited_api=True, extra_compile_args={"cxx": cxx})
    if use_cuda:
        if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0+PTX"  # H200; PTX JITs on newer GPUs
        sources += sorted(glob.glob("csrc/cuda/*.cpp")) + sorted(glob.glob("csrc/cuda/*.cu"))
        cxx += ["-DUSE_CUDA", "-DLCNET_FAST_WITH_CUDA"]
        kwargs["extra_compile_args"]["nvcc"] = opt + ["-std=c++17", "-lineinfo"]
        kwargs["include_dirs"] = _wheel_cuda_includes()
        ext = CUDAExtension("lcnet_fast._C", sources, **kwargs)
    else:
        ext = CppExtension("lcnet_fast._C", sources, **kwargs)
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


def get_packages():
    packages = find_packages(include=["lcnet_fast", "lcnet_fast.*"])
    package_dir = {}
    ref = os.path.join("python", "lcnet_reference")
    if os.path.isdir(ref):
        sub = find_packages(where="python", include=["lcnet_reference", "lcnet_reference.*"])
        packages += sub or ["lcnet_reference"]
        package_dir["lcnet_reference"] = ref
    return packages, package_dir


ext_modules, cmdclass = get_extensions()
packages, package_dir = get_packages()

setup(
    packages=packages,
    package_dir=package_dir,
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    options={"bdist_wheel": {"py_limited_api": "cp39"}} if ext_modules else {},
)
