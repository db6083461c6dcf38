"""Graph engines: the two views the fusion passes match and rewrite through, and what they stand on.

- ``views``: the read/edit surface every engine offers (``Engine``, ``Scope``, ``NodeView``, ``ValueView``).
- ``ir_engine``: onnx_ir models (functions, subgraphs, any size); ``protograph`` + ``protoconvert``: flat
  graphs rewritten on their ``ModelProto`` (the fast path for big graphs).
- ``inference``: ONNX shape inference on the side, merged by one rule, never written out.
- ``names``: every name in a model, fresh names; ``postcondition``: the structural facts of a model and
  the rules every written model obeys.

Above ``normopt.modelio`` (files) and the leaves; below ``normopt.fusion``. This package and ``modelio``
are the only ones that import ``onnx`` (checked by the import contract in ``pyproject.toml``).
"""
