"""The optional C extension (tilec/runtime/_native.c: the warm launch path). Everything else
is in pyproject.toml. Without a C compiler the build skips it and launches stay in Python."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("tilec.runtime._native", ["tilec/runtime/_native.c"],
                             optional=True, extra_compile_args=["-O2"])])
