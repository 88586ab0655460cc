"""A portable plugin for eKuiper (and weir) written with the PyPI `ekuiper`
SDK: machine-learning helpers on numpy, scikit-learn and onnxruntime, a
simulated furnace source and a file sink."""
import json
import os
import threading
import time

import numpy as np
from ekuiper import Function, PluginConfig, Sink, Source, plugin

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


class GasFlowOnnx(Function):
    """py_gasflow_onnx(temperature, pressure, o2): the ONNX gas-flow model
    (an MLP exported from scikit-learn) run with onnxruntime, one row per
    call as eKuiper calls functions.

    The model ships in the plugin package: `gasflow.onnx` next to this file.
    It is loaded on the first call, so the plugin's other functions work
    without it (or without onnxruntime installed)."""

    def __init__(self):
        self.session = None

    def validate(self, args):
        return "" if len(args) == 3 else "py_gasflow_onnx takes 3 arguments"

    def exec(self, args, ctx):
        if len(args) != 3:
            raise ValueError("py_gasflow_onnx takes 3 arguments, got {}".format(len(args)))
        if self.session is None:
            self.session = load_onnx("gasflow.onnx")
        x = np.asarray([args], dtype=np.float32)
        return float(self.session.run(None, {"input": x})[0][0, 0])

    def is_aggregate(self):
        return False


def load_onnx(file):
    """An onnxruntime session for a model file in the plugin folder."""
    import onnxruntime as ort

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), file)
    if not os.path.isfile(path):
        raise FileNotFoundError("model {} is not in the plugin package".format(file))
    opts = ort.SessionOptions()
    # One row per call: a thread pool would only add hand-offs.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


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


class Furnace(Source):
    """Source pyfurnace: `count` readings of furnace `furnace`, one every
    `interval` ms, numbered from 0 in `seq`, then it stops. Configured by
    sources/pyfurnace.yaml and the stream's CONF_KEY."""

    def __init__(self):
        self.conf = {}
        self.closed = threading.Event()

    def configure(self, datasource, conf):
        self.conf = conf
        if int(conf.get("count", 0)) < 0:
            raise ValueError("count must not be negative")

    def open(self, ctx):
        count = int(self.conf.get("count", 10))
        interval = float(self.conf.get("interval", 100)) / 1000.0
        furnace = self.conf.get("furnace", "F1")
        for seq in range(count):
            if self.closed.is_set():
                return
            reading = {"seq": seq, "furnace": furnace, "temperature": 850.0 + 10.0 * seq}
            ctx.emit(reading, {"furnace": furnace})
            if interval > 0:
                self.closed.wait(interval)

    def close(self, ctx):
        self.closed.set()


class File(Sink):
    """Sink pyfile: appends each payload it receives as a line to the file
    `path`. With `requireAck` it acknowledges each payload, with an error
    when the payload contains `failOn`."""

    def __init__(self):
        self.path = None
        self.fail_on = None
        self.require_ack = False

    def configure(self, conf):
        if not conf.get("path"):
            raise ValueError("pyfile needs a path")
        self.path = conf["path"]
        self.fail_on = conf.get("failOn")
        self.require_ack = bool(conf.get("requireAck", False))

    def open(self, ctx):
        pass

    def collect(self, ctx, data):
        text = data.decode("utf-8") if isinstance(data, bytes) else json.dumps(data)
        if self.fail_on and self.fail_on in text:
            if self.require_ack:
                ctx.ack_error("refused {}".format(text))
            return
        with open(self.path, "a") as f:
            f.write(text + "\n")
        if self.require_ack:
            ctx.ack_ok()

    def close(self, ctx):
        pass


if __name__ == '__main__':
    plugin.start(PluginConfig("pyml", {"pyfurnace": lambda: Furnace()}, {"pyfile": lambda: File()}, {
        "py_gasflow": lambda: GasFlow(),
        "py_gasflow_onnx": lambda: GasFlowOnnx(),
        "py_zscore": lambda: ZScore(),
        "py_fail": lambda: Fail(),
        "py_crash": lambda: Crash(),
        "py_sleep": lambda: Sleep(),
    }))
