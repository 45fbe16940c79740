"""An ONNX graph as rnnx's importer reads it: constants (folded where computed from constants
alone), producers, graph inputs, and three questions about a value: is it zeros, is it shape
arithmetic only, which graph inputs does its data come from."""
import numpy as np

CELLS = ("RNN", "LSTM", "GRU")
# ops that keep zeros zeros, whatever they do to the shape (torch.onnx.export builds the zero
# initial state as ConstantOfShape or Expand(0, ...), then Slices or Gathers it per node)
_ZERO_PRESERVING = {"Expand", "Identity", "Cast", "Reshape", "Squeeze", "Unsqueeze",
                    "Transpose", "Tile", "Flatten", "Slice", "Gather", "Split"}
# ops that read only the shape of their input, not its values
_SHAPE_READERS = {"Shape", "Size"}


class Graph:
    """The graph's constants, producers and inputs."""

    def __init__(self, onnx, proto):
        self.onnx = onnx
        graph = proto.graph
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.producer = {}
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant_value(node)
        for name, value in self.consts.items():
            if value.dtype in (np.float16,) or value.dtype.name == "bfloat16":
                raise TypeError(f"the graph holds {value.dtype} data ({name!r}); rnnx imports "
                                "float32 and float64 only (convert the model first)")
        self.inputs = [i for i in graph.input if i.name not in self.consts]
        self.outputs = [o.name for o in graph.output]
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          onnx.defs.onnx_opset_version())
        self._folded = {}
        self._shape_only = {}
        self.onnx_graph = graph

    def _constant_value(self, node):
        attr = node.attribute[0]
        value = self.onnx.helper.get_attribute_value(attr)
        if attr.name == "value":
            return self.onnx.numpy_helper.to_array(value)
        if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return np.asarray(value)
        raise ValueError(f"Constant node {node.name!r}: attribute {attr.name!r} is not supported")

    def ancestors(self, name):
        """Every node (by id) that the value `name` is computed from."""
        seen, stack, nodes = set(), [name], []
        while stack:
            value = stack.pop()
            node = self.producer.get(value)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend(i for i in node.input if i)
        return seen, nodes

    def fold(self, name):
        """The value of `name` if it is computed from constants alone (an initializer, a
        Constant node, or glue on them, as torch.onnx.export writes its weights without
        constant folding), else None.  Evaluated by onnx's reference evaluator, node by node."""
        if name in self.consts:
            return self.consts[name]
        if name in self._folded:
            return self._folded[name]
        self._folded[name] = None      # also breaks cycles
        node = self.producer.get(name)
        if node is None or node.op_type in CELLS or node.domain not in ("", "ai.onnx"):
            return None
        inputs = [self.fold(i) if i else None for i in node.input]
        if any(v is None for i, v in zip(node.input, inputs) if i):
            return None
        from onnx.reference import ReferenceEvaluator
        evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
        feeds = {i: v for i, v in zip(node.input, inputs) if i}
        for out, value in zip(node.output, evaluator.run(None, feeds)):
            self._folded[out] = np.asarray(value)
        return self._folded[name]

    def const(self, name, what):
        """The constant value behind `name`, or an error naming `what`."""
        value = self.fold(name)
        if value is None:
            raise ValueError(f"{what} ({name!r}) must be a constant (computed from initializers "
                             "and Constant nodes alone) to be imported")
        return value

    def is_zero(self, name):
        """Whether `name` is zeros, whatever its shape (torch.onnx.export builds the zero
        initial state as Expand(0, Shape(x)...))."""
        if not name:
            return True
        value = self.fold(name)
        if value is not None:
            return not np.any(value)
        node = self.producer.get(name)
        if node is None:
            return False
        if node.op_type == "ConstantOfShape":
            attrs = {a.name: a for a in node.attribute}
            return "value" not in attrs or not np.any(
                self.onnx.numpy_helper.to_array(attrs["value"].t))
        if node.op_type in _ZERO_PRESERVING:
            return self.is_zero(node.input[0])
        if node.op_type == "Concat":
            return all(self.is_zero(i) for i in node.input)
        return False

    def shape_only(self, name):
        """Whether `name` depends on the graph's inputs through their shapes alone (Shape,
        then integer arithmetic on sizes: the dynamo exporter's Mul, Concat, Slice, ...)."""
        if name in self._shape_only:
            return self._shape_only[name]
        self._shape_only[name] = False          # breaks cycles
        node = self.producer.get(name)
        if node is None:
            result = name in self.consts or not name
        elif node.op_type in _SHAPE_READERS:
            result = True
        elif node.op_type in CELLS:
            result = False
        else:
            result = all(self.shape_only(i) or self.fold(i) is not None for i in node.input if i)
        self._shape_only[name] = result
        return result

    def data_sources(self, name):
        """The graph inputs whose values (not only shapes) `name` is computed from."""
        sources, seen, stack = set(), set(), [name]
        while stack:
            value = stack.pop()
            if value in seen or not value or self.fold(value) is not None:
                continue
            seen.add(value)
            node = self.producer.get(value)
            if node is None:
                sources.add(value)
            elif node.op_type not in _SHAPE_READERS:
                stack.extend(node.input)
        return sources

    def source(self, name):
        """`name` traced back through Identity and Cast."""
        node = self.producer.get(name)
        while node is not None and node.op_type in ("Identity", "Cast"):
            name = node.input[0]
            node = self.producer.get(name)
        return name, node


def decode(value):
    return value.decode() if isinstance(value, bytes) else value


def attributes(onnx, node):
    """{name: value} of a node's attributes, strings decoded."""
    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        out[a.name] = [decode(v) for v in value] if isinstance(value, list) else decode(value)
    return out
