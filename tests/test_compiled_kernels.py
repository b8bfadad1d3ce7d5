"""Building the C++ kernels: once per machine, and a clear fallback.

The cache's behaviour is tested on a small source of the same layout (a
source and the header it includes), which compiles in a fraction of a
second; the command that builds the real kernels builds one of them.
"""

import ctypes
import os
import pathlib

import jax
import pytest

from keras_stn import kernels
from keras_stn.ops.sampling.cpp_kernel import build as compiled_kernels

SOURCE = "jax_bilinear_sampling.cc"
INCLUDE_DIRS = (jax.ffi.include_dir(),)
SMALL_SOURCE = "small_kernel.cc"


@pytest.fixture
def small_sources(monkeypatch, tmp_path_factory):
    """A kernels folder holding a small source that includes a header."""
    sources = tmp_path_factory.mktemp("sources")
    (sources / "small_kernel.h").write_text("#define SMALL_VALUE 7\n")
    (sources / SMALL_SOURCE).write_text(
        '#include "small_kernel.h"\n'
        'extern "C" int KerasStnSmall() { return SMALL_VALUE; }\n'
    )
    monkeypatch.setattr(compiled_kernels, "KERNELS_DIR", sources)
    return sources


@pytest.fixture
def kernel_cache(monkeypatch, tmp_path):
    """An empty kernel cache, and no library loaded by this process yet."""
    monkeypatch.setenv("KERAS_STN_KERNEL_CACHE", str(tmp_path))
    compiled_kernels.compiled_library.cache_clear()
    yield tmp_path
    compiled_kernels.compiled_library.cache_clear()


def test_builds_once_and_reuses_the_library(kernel_cache, small_sources):
    path = compiled_kernels.compiled_library(SMALL_SOURCE)
    assert ctypes.CDLL(path).KerasStnSmall() == 7
    (built,) = kernel_cache.iterdir()
    assert built == path
    assert built.name.startswith("small_kernel-")
    assert built.suffix == ".so"
    modified = built.stat().st_mtime_ns
    # A later process (here: after the in-process cache is cleared) loads
    # the library it finds instead of compiling again.
    compiled_kernels.compiled_library.cache_clear()
    assert compiled_kernels.compiled_library(SMALL_SOURCE) is not None
    assert [path.name for path in kernel_cache.iterdir()] == [built.name]
    assert built.stat().st_mtime_ns == modified


def test_a_changed_header_builds_a_new_library(kernel_cache, small_sources):
    first = compiled_kernels.compiled_library(SMALL_SOURCE)
    header = small_sources / "small_kernel.h"
    header.write_text("#define SMALL_VALUE 8\n")
    compiled_kernels.compiled_library.cache_clear()
    second = compiled_kernels.compiled_library(SMALL_SOURCE)
    assert second != first
    assert ctypes.CDLL(second).KerasStnSmall() == 8
    assert len(list(kernel_cache.glob("*.so"))) == 2


def test_no_compiler_warns_and_falls_back(kernel_cache, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler `no-such"):
        assert compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS) is None
    assert list(kernel_cache.iterdir()) == []


def test_a_failed_build_warns_with_the_compiler_message(
    kernel_cache, monkeypatch
):
    # Without the framework's headers the source does not compile.
    with pytest.warns(UserWarning, match="could not build.*ffi.h"):
        assert compiled_kernels.compiled_library(SOURCE, ()) is None
    assert list(kernel_cache.glob("*.so")) == []


def test_an_unwritable_cache_warns_and_falls_back(monkeypatch, tmp_path):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    monkeypatch.setenv("KERAS_STN_KERNEL_CACHE", str(blocked / "kernels"))
    compiled_kernels.compiled_library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="could not build.*cache"):
            path = compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS)
        assert path is None
    finally:
        compiled_kernels.compiled_library.cache_clear()


def test_default_cache_is_under_keras_home(monkeypatch, tmp_path):
    monkeypatch.delenv("KERAS_STN_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert compiled_kernels._cache_dir() == pathlib.Path(
        tmp_path, "keras_stn", "kernels"
    )
    monkeypatch.delenv("KERAS_HOME")
    assert compiled_kernels._cache_dir() == pathlib.Path(
        os.path.expanduser("~/.keras"), "keras_stn", "kernels"
    )


def test_a_build_says_so_before_it_starts(kernel_cache, small_sources, capsys):
    compiled_kernels.compiled_library(SMALL_SOURCE)
    message = capsys.readouterr().err
    assert f"compiling its C++ sampling kernel `{SMALL_SOURCE}`" in message
    assert "python -m keras_stn.kernels build" in message
    compiled_kernels.compiled_library.cache_clear()
    compiled_kernels.compiled_library(SMALL_SOURCE)
    assert capsys.readouterr().err == "", "a built kernel is reused quietly"


def test_the_build_command_builds_and_reports_where(kernel_cache, capsys):
    assert kernels.installed_backends() == ["tensorflow", "jax", "torch"]
    assert kernels.main(["build", "torch"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    (library,) = kernel_cache.glob("*.so")
    assert library.name.startswith("c_bilinear_sampling-")
    assert line.startswith(f"torch: {library} (")
    with pytest.raises(ValueError, match="backends"):
        kernels.build(["numpy"])


def test_the_build_command_names_a_backend_it_cannot_build(
    kernel_cache, capsys, monkeypatch
):
    monkeypatch.setattr(kernels, "installed_backends", lambda: ["torch"])
    assert kernels.main(["build", "jax"]) == 1
    assert capsys.readouterr().out == "jax: not installed (pip install jax)\n"
    with pytest.raises(SystemExit):
        kernels.main(["build", "numpy"])
    assert "unknown backend 'numpy'" in capsys.readouterr().err


def test_native_macros_say_what_the_processor_gives():
    macros = compiled_kernels.native_macros()
    assert "__cplusplus" in macros
    # What the kernels' blocks and TensorFlow's build look for.
    flags = pathlib.Path("/proc/cpuinfo").read_text()
    assert ("__AVX512F__" in macros) == (" avx512f" in flags)


def test_block_channels_are_the_kernels():
    """The dispatch's count of the channels that the vector blocks take is
    the C++ header's."""
    header = (compiled_kernels.KERNELS_DIR / "bilinear_sampling.h").read_text()
    channels = compiled_kernels.BLOCK_MAX_CHANNELS
    assert f"constexpr int kMaxBlockChannels = {channels};" in header
    flags = pathlib.Path("/proc/cpuinfo").read_text().split()
    assert compiled_kernels.targets_avx2() == ("avx2" in flags)


def test_tensorflow_builds_without_avx512_fp16():
    from keras_stn.ops.sampling.cpp_kernel import tensorflow_ops

    fp16 = frozenset({"__AVX2__", "__AVX512F__", "__AVX512FP16__"})
    assert tensorflow_ops.header_safe_flags(fp16) == ("-mno-avx512fp16",)
    assert tensorflow_ops.header_safe_flags(frozenset({"__AVX2__"})) == ()
