"""The `tag` options are defined once (tagging/request.py): both parsers are built from the fields."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from pipeline.cli import build_parser
from pipeline.config import MODEL, PARAMS
from pipeline.tagging import spark_job
from pipeline.tagging.request import TAG_OPTIONS, TagRequest, add_arguments, from_args


def test_every_field_is_an_option_of_tag_and_parses_back_to_the_request():
    args = build_parser().parse_args(["tag", "a.txt", "-o", "o.csv", "--explain", "3", "--no-text", "--jobs", "2"])
    req = from_args(args, TAG_OPTIONS, params=args.params)
    assert req == TagRequest(paths=["a.txt"], output="o.csv", explain=3, no_text=True, jobs=2)
    assert set(TAG_OPTIONS) | {"params"} == {f.name for f in fields(TagRequest)}


def test_defaults_come_from_config():
    req = from_args(build_parser().parse_args(["tag", "x"]), TAG_OPTIONS, params=PARAMS)
    assert req.model == str(MODEL) and req.params == PARAMS


def test_an_option_the_parser_lacks_fails_instead_of_being_dropped():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ("paths", "output"))
    with pytest.raises(AttributeError, match="explain"):
        from_args(parser.parse_args(["x"]), ("paths", "output", "explain"))
    with pytest.raises(KeyError):
        add_arguments(argparse.ArgumentParser(), ("no_such_option",))
    with pytest.raises(ValueError, match="not added"):
        add_arguments(argparse.ArgumentParser(), ("paths",), outptu={"required": True})


def test_the_spark_job_takes_its_options_from_the_same_fields():
    args = spark_job.build_parser().parse_args(["in/", "-o", "out/", "--master", "local[2]", "--min-confidence", "0.5"])
    req = from_args(args, (*spark_job.OPTIONS, "spark_master", "params", "quiet"), engine="spark")
    assert (req.engine, req.spark_master, req.min_confidence, req.model) == ("spark", "local[2]", 0.5, str(MODEL))
