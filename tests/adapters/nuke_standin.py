"""A recording stand-in of Nuke's ``nuke`` module: the calls osvos_nuke makes, as Foundry documents them.

Not a Nuke emulator: nodes hold knobs and inputs, nothing is computed. What it does do is hold the adapter
to the real API, so a renamed knob or call fails a test instead of failing in a studio:

* every node class knows its knobs (the subset of Nuke's that matter here, under Nuke's names); a knob it
  does not know raises NameError like ``node["x"]`` in Nuke, and so does a ``nuke.nodes.X(knob=...)`` with
  an unknown knob; an Enumeration knob refuses a value that is not one of its choices;
* a function or class the module does not define is an AttributeError (``nuke.filename`` is left out on
  purpose: in proxy mode it names the proxy file);
* every call that changes something is recorded in order in ``session.calls``, so tests can say *what
  happened after what* (the matte Read reloaded after the render ended, the proxy switch restored after the
  pre-render...);
* ``nuke.execute`` renders nothing by itself: ``session.on_render(write, frame)`` may write the files, and
  ``session.fail_render`` makes it raise RuntimeError as Nuke does ("Cancelled", or a Write error);
* ``nuke.executeInMainThread`` queues; ``session.pump()`` runs the queue, as Nuke's main thread would.

``make_nuke()`` returns a fresh module (its ``session`` attribute holds the state).
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable
from typing import Any

CHANNEL = re.compile(r"none|[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*")
FLAGS = {"STARTLINE": 0x1000, "LOG_SLIDER": 0x2, "NO_ANIMATION": 0x100, "INVISIBLE": 0x400}


class Knob:
    kind = "Knob"

    def __init__(self, name: str, label: str = "", value: Any = None) -> None:
        self._name, self._label, self._value = name, label, value
        self.flags: set[int] = set()
        self.tooltip = ""
        self.expression: str | None = None
        self.node: Node | None = None

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self) -> Any:
        return self._value

    def getValue(self) -> Any:
        return self._value

    def _convert(self, value: Any) -> Any:
        return value

    def setValue(self, value: Any) -> bool:
        self._value = self._convert(value)
        if self.node is not None:
            self.node.session.record("setValue", self.node.fullName(), self._name, self._value)
        return True

    def setFlag(self, flag: int) -> None:
        if flag not in FLAGS.values():
            raise ValueError(f"unknown flag {flag}")
        self.flags.add(flag)

    def setTooltip(self, text: str) -> None:
        self.tooltip = str(text)

    def setExpression(self, expression: str) -> bool:
        self.expression = expression
        if self.node is not None:
            self.node.session.record("setExpression", self.node.fullName(), self._name, expression)
        return True


class Int_Knob(Knob):
    kind = "Int_Knob"

    def __init__(self, name: str, label: str = "") -> None:
        super().__init__(name, label, 0)
        self.range = None

    def _convert(self, value):
        return int(value)

    def setRange(self, lo, hi) -> None:
        self.range = (lo, hi)


class Double_Knob(Int_Knob):
    kind = "Double_Knob"

    def __init__(self, name: str, label: str = "") -> None:
        super().__init__(name, label)
        self._value = 0.0

    def _convert(self, value):
        return float(value)


class Boolean_Knob(Knob):
    kind = "Boolean_Knob"

    def __init__(self, name: str, label: str = "", value: bool = False) -> None:
        super().__init__(name, label, bool(value))

    def _convert(self, value):
        if not isinstance(value, (bool, int, float)):
            raise TypeError(f"{self._name}: a boolean knob takes a bool, not {value!r}")
        return bool(value)


class Enumeration_Knob(Knob):
    kind = "Enumeration_Knob"

    def __init__(self, name: str, label: str = "", values: list | None = None) -> None:
        self.values = [str(v) for v in (values or [])]
        super().__init__(name, label, self.values[0] if self.values else "")

    def _convert(self, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.values[int(value)]
        if str(value) not in self.values:
            raise ValueError(f"{self._name}: {value!r} is not one of {self.values}")
        return str(value)

    def getValue(self) -> float:
        return float(self.values.index(self._value))


class String_Knob(Knob):
    kind = "String_Knob"

    def __init__(self, name: str, label: str = "", value: str = "") -> None:
        super().__init__(name, label, str(value))

    def _convert(self, value):
        return str(value)

    def getEvaluatedValue(self) -> str:
        return self._value  # no TCL in the stand-in


class File_Knob(String_Knob):
    kind = "File_Knob"

    def __init__(self, name: str, label: str = "") -> None:
        super().__init__(name, label, "")


class Text_Knob(String_Knob):
    kind = "Text_Knob"


class Tab_Knob(Knob):
    kind = "Tab_Knob"


class Channel_Knob(String_Knob):
    kind = "Channel_Knob"

    def _convert(self, value):
        if not CHANNEL.fullmatch(str(value)):
            raise ValueError(f"{self._name}: {value!r} is not a channel (layer.channel)")
        return str(value)


class PyScript_Knob(Knob):
    kind = "PyScript_Knob"

    def __init__(self, name: str, label: str = "", command: str = "") -> None:
        super().__init__(name, label, command)

    def execute(self) -> None:
        node = self.node
        if node is not None:
            node.session.record("execute", node.fullName(), self._name)
            if self._value:
                node.session.press(node, self._name)


class Button_Knob(PyScript_Knob):
    """A built-in button (Read's reload): executing it records the press."""

    def execute(self) -> None:
        if self.node is not None:
            self.node.session.record("execute", self.node.fullName(), self._name)


# Nuke's knobs of each node class used here (names and kinds as in Nuke 14/15).
def _enum(*values):
    return lambda name: Enumeration_Knob(name, name, list(values))


def _bool(name):
    return Boolean_Knob(name, name)


def _str(name):
    return String_Knob(name, name)


def _file(name):
    return File_Knob(name, name)


def _int(name):
    return Int_Knob(name, name)


def _chan(default):
    return lambda name: Channel_Knob(name, name, default)


COPY_KNOBS = {f"{d}{i}": _chan("none") for i in range(4) for d in ("from", "to")}
NODE_KNOBS: dict[str, dict[str, Callable[[str], Knob]]] = {
    "Root": {"name": _str, "first_frame": _int, "last_frame": _int, "proxy": _bool,
             "colorManagement": _enum("Nuke", "OCIO"),
             "OCIO_config": _enum("nuke-default", "aces_1.2", "fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1",
                                  "custom"),
             "customOCIOConfigPath": _file, "OCIOConfigPath": _file, "workingSpaceLUT": _str},
    "Group": {"disable": _bool, "label": _str},
    "Input": {"number": _int},
    "Output": {},
    "Read": {"file": _file, "proxy": _file, "first": _int, "last": _int, "origfirst": _int, "origlast": _int,
             "before": _enum("hold", "loop", "bounce", "black"), "after": _enum("hold", "loop", "bounce", "black"),
             "frame_mode": _enum("expression", "start at", "offset"), "frame": _str, "colorspace": _str,
             "raw": _bool, "premultiplied": _bool,
             "on_error": _enum("error", "black", "checkerboard", "nearest frame"),
             "reload": lambda name: Button_Knob(name, name), "disable": _bool},
    "Write": {"file": _file, "proxy": _file, "file_type": _enum(" ", "exr", "png", "jpeg", "tiff", "dpx", "mov"),
              "channels": _enum("rgb", "rgba", "alpha", "all"), "datatype": _enum("16 bit half", "32 bit float"),
              "raw": _bool, "colorspace": _str, "create_directories": _bool, "disable": _bool},
    "Copy": {**COPY_KNOBS, "disable": _bool},
    "Premult": {"channels": _enum("rgb", "rgba", "all"), "alpha": _chan("rgba.alpha"), "disable": _bool},
    "Roto": {"output": _enum("alpha", "rgba"), "disable": _bool},
    "Blur": {"size": _int, "disable": _bool},
}


class Node:
    def __init__(self, session: Session, cls: str, parent: Node | None) -> None:
        if cls not in NODE_KNOBS:
            raise RuntimeError(f"unknown node class {cls}")
        self.session, self._class, self.parent = session, cls, parent
        self._knobs: dict[str, Knob] = {}
        for name, make in NODE_KNOBS[cls].items():
            self._add(make(name))
        self._name = ""
        self._inputs: dict[int, Node] = {}
        self.children: list[Node] = []
        self.first = self.last = None  # frame range of a non-Read upstream node

    def _add(self, knob: Knob) -> None:
        if knob.name() in self._knobs:
            raise RuntimeError(f"{self._class}: a knob called {knob.name()} exists already")
        knob.node = self
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def fullName(self) -> str:
        if self.parent is None or self.parent is self.session.root_node:
            return self._name
        return f"{self.parent.fullName()}.{self._name}"

    def setName(self, name: str) -> None:
        siblings = {n.name() for n in self.session.children(self.parent) if n is not self}
        unique, k = name, 1
        while unique in siblings:
            unique, k = f"{name}{k}", k + 1
        self._name = unique

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"{self._class} {self._name} has no knob called {name}")
        return self._knobs[name]

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def addKnob(self, knob: Knob) -> None:
        self._add(knob)
        self.session.record("addKnob", self.fullName(), knob.name())

    def setInput(self, i: int, node: Node | None) -> bool:
        if node is None:
            self._inputs.pop(i, None)
        else:
            self._inputs[i] = node
        self.session.record("setInput", self.fullName(), i, node.fullName() if node else None)
        return True

    def input(self, i: int) -> Node | None:
        node = self._inputs.get(i)
        if node is None and self._class == "Input" and self.parent is not None:
            return None
        return node

    def firstFrame(self) -> int:
        if self._class == "Read":
            return self["first"].value()
        return self.first if self.first is not None else self.session.root_node["first_frame"].value()

    def lastFrame(self) -> int:
        if self._class == "Read":
            return self["last"].value()
        return self.last if self.last is not None else self.session.root_node["last_frame"].value()

    # a Group is its own context, as in Nuke: ``with group: nuke.nodes.X()``
    def __enter__(self) -> Node:
        if self._class != "Group":
            raise RuntimeError(f"{self._class} is not a group")
        self.session.context.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.session.context.pop()

    def nodes(self) -> list[Node]:
        return list(self.children)

    def upstream_input_node(self, number: int) -> Node | None:
        """What the group's Input ``number`` sees (a test helper, not Nuke API)."""
        return self._inputs.get(number)


class Session:
    """State of one stand-in Nuke: the node tree, the calls made, the switches tests turn."""

    def __init__(self, gui: bool = True) -> None:
        self.calls: list[tuple] = []
        self.lock = threading.Lock()
        self.root_node = Node(self, "Root", None)
        self.root_node._name = "root"
        self.root_node["name"]._value = ""
        self.root_node["first_frame"]._value = 1
        self.root_node["last_frame"]._value = 100
        self.root_node["workingSpaceLUT"]._value = "linear"
        self.context: list[Node] = [self.root_node]
        self.current_frame = 1
        self.this_node: Node | None = None
        self.gui = gui
        self.queue: list[tuple[Callable, tuple, dict]] = []
        self.on_script_close: list[tuple] = []
        self.on_destroy: list[tuple] = []
        self.progress_cancelled = False
        self.progress: list[tuple] = []
        self.on_render: Callable[[Node, int], None] | None = None
        self.fail_render: str | None = None  # RuntimeError message nuke.execute raises
        self.ask_answer = False

    def record(self, *call) -> None:
        with self.lock:
            self.calls.append(call)

    def calls_named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]

    def children(self, parent: Node | None) -> list[Node]:
        return (parent or self.root_node).children

    def create(self, cls: str, knobs: dict) -> Node:
        parent = self.context[-1]
        node = Node(self, cls, parent)
        node.setName(knobs.pop("name", None) or cls)
        parent.children.append(node)
        self.record("create", cls, node.fullName())
        for key, value in knobs.items():
            node[key].setValue(value)  # NameError for a knob the class does not have
        return node

    def find(self, name: str) -> Node | None:
        if "." in name:
            node: Node | None = self.root_node
            for part in name.split("."):
                node = next((n for n in self.children(node) if n.name() == part), None) if node else None
            return node
        return next((n for n in self.children(self.context[-1]) if n.name() == name), None)

    def delete(self, node: Node) -> None:
        self.this_node, before = node, self.this_node
        try:
            for fn, args, kwargs, cls in list(self.on_destroy):
                if cls in ("*", node.Class()):
                    fn(*args, **kwargs)
        finally:
            self.this_node = before
        node.parent.children.remove(node)
        self.record("delete", node.fullName())

    def press(self, node: Node, knob: str) -> None:
        """Press a PyScript button as Nuke does: its script runs with nuke.thisNode() the node."""
        before, self.this_node = self.this_node, node
        try:
            exec(node[knob].value(), {"nuke": self.module})
        finally:
            self.this_node = before

    def pump(self) -> int:
        """Run the calls queued by executeInMainThread (Nuke's main thread); how many ran."""
        with self.lock:
            queued, self.queue = self.queue, []
        for fn, args, kwargs in queued:
            self.record("main_thread", fn.__name__)
            fn(*args, **kwargs)
        return len(queued)

    def close_script(self) -> None:
        """File > Close (or quitting): the onScriptClose callbacks, then every node goes."""
        self.record("close_script")
        for fn, args, kwargs, _ in list(self.on_script_close):
            fn(*args, **kwargs)
        self.root_node.children.clear()


def make_nuke(gui: bool = True) -> types.ModuleType:
    """A fresh stand-in ``nuke`` module; its ``session`` holds the state and the recorded calls."""
    s = Session(gui)
    m = types.ModuleType("nuke")
    s.module = m
    m.session = s
    m.GUI = gui
    m.env = {"gui": gui, "NukeVersionMajor": 15, "NukeVersionMinor": 1, "nukex": True}
    for cls in (Knob, Int_Knob, Double_Knob, Boolean_Knob, Enumeration_Knob, String_Knob, File_Knob, Text_Knob,
                Tab_Knob, PyScript_Knob):
        setattr(m, cls.__name__, cls)
    m.Node = Node
    for flag, value in FLAGS.items():
        setattr(m, flag, value)

    class Nodes:
        def __getattr__(self, cls: str):
            if cls not in NODE_KNOBS or cls == "Root":
                raise AttributeError(f"nuke.nodes has no {cls}")
            return lambda **knobs: s.create(cls, dict(knobs))

    m.nodes = Nodes()

    def createNode(cls: str, knobs: str = "", inpanel: bool = True) -> Node:
        if knobs:
            raise NotImplementedError("knob strings are not used by the adapter")
        return s.create(cls, {})

    def toNode(name: str) -> Node | None:
        return s.find(name)

    def thisNode() -> Node | None:
        return s.this_node

    def root() -> Node:
        return s.root_node

    def delete(node: Node) -> None:
        s.delete(node)

    def execute(node, start: int, end: int, incr: int = 1, views=None, continueOnError: bool = False) -> None:
        node = s.find(node) if isinstance(node, str) else node
        if node is None or node.Class() != "Write":
            raise ValueError("execute needs a Write node")
        s.record("execute_render", node.fullName(), start, end, incr, bool(s.root_node["proxy"].value()))
        for frame in range(start, end + 1, incr):
            if s.fail_render:
                raise RuntimeError(s.fail_render)
            if s.on_render is not None:
                s.on_render(node, frame)

    def frame(value: int | None = None) -> int:
        if value is not None:
            s.current_frame = int(value)
            s.record("frame", int(value))
        return s.current_frame

    def message(text: str) -> None:
        s.record("message", text)

    def ask(text: str) -> bool:
        s.record("ask", text)
        return s.ask_answer

    def tprint(*args) -> None:
        s.record("tprint", " ".join(str(a) for a in args))

    def executeInMainThread(fn: Callable, args: tuple = (), kwargs: dict | None = None) -> None:
        if not isinstance(args, tuple):
            args = (args,)
        with s.lock:
            s.queue.append((fn, args, dict(kwargs or {})))
            s.calls.append(("executeInMainThread", fn.__name__))

    def addOnScriptClose(fn: Callable, args: tuple = (), kwargs: dict | None = None, nodeClass: str = "Root"):
        s.on_script_close.append((fn, args, dict(kwargs or {}), nodeClass))
        s.record("addOnScriptClose", fn.__name__)

    def addOnDestroy(fn: Callable, args: tuple = (), kwargs: dict | None = None, nodeClass: str = "*"):
        s.on_destroy.append((fn, args, dict(kwargs or {}), nodeClass))
        s.record("addOnDestroy", fn.__name__, nodeClass)

    class ProgressTask:
        def __init__(self, title: str) -> None:
            s.record("ProgressTask", title)

        def setMessage(self, text: str) -> None:
            s.progress.append(("message", text))

        def setProgress(self, percent: int) -> None:
            if not isinstance(percent, int):
                raise TypeError("setProgress takes an int")
            s.progress.append(("progress", percent))

        def isCancelled(self) -> bool:
            return s.progress_cancelled

    for fn in (createNode, toNode, thisNode, root, delete, execute, frame, message, ask, tprint,
               executeInMainThread, addOnScriptClose, addOnDestroy):
        setattr(m, fn.__name__, fn)
    m.ProgressTask = ProgressTask
    return m
