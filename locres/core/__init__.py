"""Pure numerics that every layer may import and that never touch disk.

``maps``: the map type, its geometry and resampling (onto another grid, onto a network's grid);
``fourier``: frequency grids, shells and filters; ``devices``: one device resolver;
``masks``: the automatic molecular mask. Errors are :class:`locres.errors.LocresError`.
"""
