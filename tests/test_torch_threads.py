"""A model generates with the torch thread count its process set (hf.cpu_threads() in a worker).

OpenMP keeps the count per thread: a new thread gets OpenMP's default, every core, until torch
sets it up, whatever `torch.set_num_threads` said in the main thread. Generation runs in a new
thread per request, so without `torch_threads_as_set` the two workers of a battle each used every
core. OpenMP's own count is read here through the libgomp that torch loaded.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
from pathlib import Path

import pytest
import torch

from arena.backends import hf
from arena.backends.base import chat_messages
from arena.backends.hf.loaded import torch_threads_as_set
from arena.config import Settings
from arena.errors import ModelError
from tests.conftest import skip_or_fail
from tests.test_demo_models import test_image


@pytest.fixture
def openmp_threads():
    """omp_get_max_threads of the calling thread, with torch set to 1 thread meanwhile."""
    maps = Path(f"/proc/{os.getpid()}/maps")
    lines = maps.read_text().splitlines() if maps.exists() else []
    path = next((line.split()[-1] for line in lines if "libgomp" in line), None)
    if path is None:
        skip_or_fail("this torch does not run on GNU OpenMP (no libgomp loaded)")
    if (os.cpu_count() or 1) < 2 or os.environ.get("OMP_NUM_THREADS") == "1":
        skip_or_fail("OpenMP's default here is one thread already: nothing to tell apart")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield ctypes.CDLL(path).omp_get_max_threads
    torch.set_num_threads(before)


def in_new_thread(fn):
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def test_a_new_thread_gets_the_process_count_not_openmps_default(openmp_threads):
    assert in_new_thread(openmp_threads) > 1  # the trap: OpenMP's default in a new thread
    assert in_new_thread(lambda: (torch_threads_as_set(), openmp_threads())[1]) == 1


def test_generation_thread_runs_with_the_process_count(openmp_threads, llava_spec):
    model = dataclasses.replace(hf.load_model(llava_spec, Settings()))
    seen = []

    def pipe(*args, **kwargs):
        seen.append(openmp_threads())
        raise RuntimeError("enough")

    model.pipe = pipe
    with pytest.raises(ModelError, match="enough"):
        list(model.stream(chat_messages(test_image(), ["What is it?"]), llava_spec))
    assert seen == [1]
