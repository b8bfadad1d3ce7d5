"""Building the C++ kernels: once per machine, and a clear fallback."""

import ctypes
import os
import pathlib

import jax
import pytest

from keras_stn import kernels
from keras_stn.ops import compiled_kernels

SOURCE = "jax_bilinear_sampling.cc"
INCLUDE_DIRS = (jax.ffi.include_dir(),)


@pytest.fixture
def kernel_cache(monkeypatch, tmp_path):
    """An empty kernel cache, and no library loaded by this process yet."""
    monkeypatch.setenv("KERAS_STN_KERNEL_CACHE", str(tmp_path))
    compiled_kernels.compiled_library.cache_clear()
    yield tmp_path
    compiled_kernels.compiled_library.cache_clear()


def test_builds_once_and_reuses_the_library(kernel_cache):
    path = compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS)
    assert hasattr(ctypes.CDLL(path), "KerasStnBilinearSample")
    (built,) = kernel_cache.iterdir()
    assert built == path
    assert built.name.startswith("jax_bilinear_sampling-")
    assert built.suffix == ".so"
    modified = built.stat().st_mtime_ns
    # A later process (here: after the in-process cache is cleared) loads
    # the library it finds instead of compiling again.
    compiled_kernels.compiled_library.cache_clear()
    assert compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS) is not None
    assert [path.name for path in kernel_cache.iterdir()] == [built.name]
    assert built.stat().st_mtime_ns == modified


def test_a_changed_source_builds_a_new_library(kernel_cache, monkeypatch):
    compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS)
    sources = kernel_cache / "sources"
    sources.mkdir()
    for path in compiled_kernels.KERNELS_DIR.iterdir():
        text = path.read_text()
        if path.name == "bilinear_sampling.h":
            text += "\n// An edit.\n"
        (sources / path.name).write_text(text)
    monkeypatch.setattr(compiled_kernels, "KERNELS_DIR", sources)
    compiled_kernels.compiled_library.cache_clear()
    assert compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS) is not None
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


def test_a_build_says_so_before_it_starts(kernel_cache, capsys):
    compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS)
    message = capsys.readouterr().err
    assert f"compiling its C++ sampling kernel `{SOURCE}`" in message
    assert "python -m keras_stn.kernels build" in message
    compiled_kernels.compiled_library.cache_clear()
    compiled_kernels.compiled_library(SOURCE, INCLUDE_DIRS)
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
