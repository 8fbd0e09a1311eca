"""Optional extras: a missing one says which ``pip install 'odyssey-sync[x]'`` brings it."""

from __future__ import annotations

import pytest

from odyssey_sync._extras import MissingExtraError, require


def test_a_present_module_is_returned() -> None:
    assert require("json", "data", "Reading JSON").dumps([1]) == "[1]"


def test_a_missing_module_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"Writing a dataset needs the optional package 'no_such_mod_x'.*"
                       r"pip install 'odyssey-sync\[data\]'") as caught:
        require("no_such_mod_x.sub", "data", "Writing a dataset")
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value.__cause__, ImportError)
