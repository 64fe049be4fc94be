"""The compiled part of arscore: LightGBM predictions and TreeSHAP (features/trees/_kernel.cpp).

Everything else is in pyproject.toml; setuptools builds this extension on install (also for
``pip install -e .``) with the machine's C++ compiler. No flags tied to the build machine's CPU,
so a built image runs on any x86-64 or ARM64 worker.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "features.trees._kernel",
            sources=["features/trees/_kernel.cpp"],
            language="c++",
            extra_compile_args=["-std=c++17", "-O3", "-fvisibility=hidden"],
        )
    ]
)
