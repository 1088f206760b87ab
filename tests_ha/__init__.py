"""Tests of the powerbridge custom component against real Home Assistant core."""
