"""The usage examples in the separation, metrics, phantom and plotting docstrings run and give what they show."""
import doctest
import importlib

import pytest
import torch

MODULES = ["ptycho_ddip.phantoms", "ptycho_ddip.separation.metrics", "ptycho_ddip.separation.resolution",
           "ptycho_ddip.separation.networks", "ptycho_ddip.separation.options",
           "ptycho_ddip.separation.separate", "ptycho_ddip.plotting.separation", "ptycho_ddip.slices"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    torch.manual_seed(0)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
