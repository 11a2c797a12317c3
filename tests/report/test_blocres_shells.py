"""Writers of blocres's shell profile: the table and figure hold the profile's own numbers."""

from __future__ import annotations

import numpy as np

from locres.report.blocres_shells import format_shell_table, shell_profile_figure

PROFILE = {"radius_vox": [0.0, 10.0, 20.0], "radius_a": [0.0, 12.5, 25.0], "resolution_a": [3.25, None, 7.5],
           "cutoff": 0.143, "width_vox": 6}


def test_table_rows_are_the_profile():
    lines = format_shell_table(PROFILE).splitlines()
    assert lines[0].split() == ["radius_vox", "radius_a", "resolution_a"]
    assert [ln.split() for ln in lines[1:]] == [["0.0", "0.00", "3.25"], ["10.0", "12.50", "-"],
                                                 ["20.0", "25.00", "7.50"]]


def test_figure_plots_resolution_against_radius():
    import matplotlib.pyplot as plt

    fig = shell_profile_figure(PROFILE)
    try:
        ax = fig.axes[0]
        x, y = ax.lines[0].get_data()
        assert list(x) == [0.0, 12.5, 25.0]
        assert y[0] == 3.25 and np.isnan(y[1]) and y[2] == 7.5
        assert "0.143" in ax.get_ylabel() and "6 voxels" in ax.get_title()
    finally:
        plt.close(fig)
