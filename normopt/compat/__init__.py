"""The private APIs of outside libraries normopt relies on, one module per library.

Each function here is the only place normopt touches a private name of that library, and
``tests/test_compat.py`` pins the behaviour relied on, so an upgrade that changes it fails there first
(not deep inside a fusion or an export). These modules import nothing from normopt.
"""
