"""Offline evaluation of the program and what judges it: plan, render, gate, parity."""
