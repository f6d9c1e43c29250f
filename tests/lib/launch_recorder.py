"""A stand-in for a library's kernel: records the IR module of each launch instead of running
it, so tests can compile exactly what the library would launch (for any target)."""
from __future__ import annotations


class Recorder:
    def __init__(self, kernel):
        self.kernel = kernel
        self.modules = []  # (module, num_warps) per launch

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.modules.append((self.kernel.ir(*args, **kwargs), kwargs.get("num_warps", 4)))
        return launch
