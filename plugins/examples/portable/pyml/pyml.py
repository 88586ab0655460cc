"""A portable plugin for eKuiper (and weir) written with the PyPI `ekuiper`
SDK: machine-learning helpers on numpy and scikit-learn."""
import os
import time

import numpy as np
from ekuiper import Function, PluginConfig, plugin

import model


class GasFlow(Function):
    """py_gasflow(temperature, pressure, o2): the model's set point."""

    def validate(self, args):
        return "" if len(args) == 3 else "py_gasflow takes 3 arguments"

    def exec(self, args, ctx):
        if len(args) != 3:
            raise ValueError("py_gasflow takes 3 arguments, got {}".format(len(args)))
        return model.predict([args])[0]

    def is_aggregate(self):
        return False


class ZScore(Function):
    """py_zscore(array): z-scores of the values with numpy."""

    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        a = np.asarray(args[0], dtype=float)
        sd = a.std()
        return ((a - a.mean()) / sd).round(6).tolist() if sd > 0 else [0.0] * len(a)

    def is_aggregate(self):
        return False


class Fail(Function):
    """py_fail(msg): raises, to show errors reach the rule."""

    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        raise ValueError("bad input: {}".format(args[0]))

    def is_aggregate(self):
        return False


class Crash(Function):
    """py_crash(): the process dies, to show weir restarts it."""

    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        os._exit(3)

    def is_aggregate(self):
        return False


class Sleep(Function):
    """py_sleep(ms): answers late, to show a hung plugin is restarted."""

    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        time.sleep(float(args[0]) / 1000.0)
        return args[0]

    def is_aggregate(self):
        return False


if __name__ == '__main__':
    plugin.start(PluginConfig("pyml", {}, {}, {
        "py_gasflow": lambda: GasFlow(),
        "py_zscore": lambda: ZScore(),
        "py_fail": lambda: Fail(),
        "py_crash": lambda: Crash(),
        "py_sleep": lambda: Sleep(),
    }))
