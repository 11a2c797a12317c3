"""Atomic model -> density, filters, noise, half maps, phantoms with known local resolution."""
