"""The usage examples in the multislice docstrings run and give what they show."""
import doctest
import importlib

import pytest
import torch

torch.set_num_threads(1)

MODULES = ["physics", "propagation", "forward", "probe", "materials", "simulate", "reconstruct", "xrf"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"ptycho_ddip.multislice.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
