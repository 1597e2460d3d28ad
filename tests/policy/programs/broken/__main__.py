"""Policy corpus: a program that fails: the gate must report it, never pass."""


raise RuntimeError("corpus: this program is broken on purpose")
