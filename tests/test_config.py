"""Typed configs: a subclass changes inherited defaults without restating fields; mistakes fail at once."""

from dataclasses import dataclass, fields

import pytest

from keraszoo.config import TrainConfig, build_parser, option


@dataclass(frozen=True)
class _Config(TrainConfig):
    DEFAULTS = {"epochs": 7, "momentum": option(None, "SGD momentum (default: from the variant)")}
    width: int = option(3, "a field of its own")

    def __post_init__(self):
        if self.momentum is None:
            object.__setattr__(self, "momentum", 0.5)
        super().__post_init__()


def test_defaults_change_the_value_keep_the_type_and_help_and_may_become_optional():
    config = _Config()
    assert (config.epochs, config.momentum, config.width) == (7, 0.5, 3)
    by_name = {f.name: f for f in fields(_Config)}
    assert by_name["epochs"].metadata["help"] == {f.name: f for f in fields(TrainConfig)}["epochs"].metadata["help"]
    assert by_name["momentum"].metadata["help"] == "SGD momentum (default: from the variant)"
    assert [f.name for f in fields(_Config)][:len(fields(TrainConfig))] == [f.name for f in fields(TrainConfig)]
    args = build_parser(_Config).parse_args(["--epochs", "2", "--momentum", "0.9"])
    assert _Config(**vars(args)).epochs == 2 and _Config(**vars(args)).momentum == 0.9
    with pytest.raises(SystemExit):
        build_parser(_Config).parse_args(["--epochs", "two"])  # still an int option


def test_defaults_of_unknown_or_redeclared_fields_are_refused():
    with pytest.raises(TypeError, match="not an inherited field"):
        @dataclass(frozen=True)
        class Unknown(TrainConfig):
            DEFAULTS = {"epoch": 3}
    with pytest.raises(TypeError, match="both declares"):
        @dataclass(frozen=True)
        class Twice(TrainConfig):
            DEFAULTS = {"epochs": 3}
            epochs: int = 4


@pytest.mark.parametrize("argv, message", [
    (["--port", "99999"], "port=99999, grpc_port=8500: give two different ports between 1 and 65535"),
    (["--grpc-port", "8501"], "give two different ports"),
    (["--model-config-file", "/no/such/file.config"], "cannot read the model config file /no/such/file.config"),
    (["--max-batch-size", "0"], "must be >= 1"),
    (["/no/such/folder"], "is neither a folder nor a trained model's name"),
])
def test_serve_options_come_from_serving_config_and_bad_ones_are_one_line(argv, message, capsys):
    from keraszoo.cli import main

    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
