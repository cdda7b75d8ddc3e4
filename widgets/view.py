"""What every widget of the course shares: controls over a figure, a summary line, a snapshot.

A `View` holds the root ipywidget (`widget`), a one-line `summary` (an HTML widget whose text says
what the figure shows; the browser gallery waits for it to change), and `gallery_control`, the
description of the control the gallery moves. Displayed, it sends the live widget and, beside it, a
static PNG of its first state drawn with matplotlib: a notebook opened before it is run (on GitHub, or
in JupyterLab before the cell runs) shows the picture with "run the cell to interact" instead of
raw widget text; once the cell runs, JupyterLab shows the live widget.

Controls lay out in rows that wrap, so a view reads at window widths from about 900 px up, with the
file browser open.
"""
import base64
import io
from abc import ABC, abstractmethod

import anywidget
import ipywidgets as widgets

SNAPSHOT_NOTE = "A snapshot of the widget's first state: run the cell to interact."


def control_layout(min_width: int = 280) -> widgets.Layout:
    """A control that shares a wrapping row with others and never shrinks to a bare handle."""
    return widgets.Layout(flex=f"1 1 {min_width}px", min_width=f"{min_width}px", max_width="460px")


def wrapping_row(children) -> widgets.HBox:
    return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                        width="100%"))


class FitPlotsToWidth(anywidget.AnyWidget):
    """An invisible widget that sends the page one resize event once the view is on screen.

    A plotly FigureWidget sizes itself to its container only on a resize event; without one, it first
    draws at plotly's default 700 px, whatever the notebook's width.
    """

    _esm = """export default { render({ el }) {
        el.style.display = "none";
        setTimeout(() => window.dispatchEvent(new Event("resize")), 100);
    } };"""


def update_traces(figure, traces):
    """Set each trace's properties, `traces` a list (by position) or a dict {index: properties}, one trace
    a batch: plotly merges a multi-trace batch into one restyle whose missing entries reach plotly.js as
    null, which resets the other traces (their markers, their colours)."""
    for index, props in (traces.items() if isinstance(traces, dict) else enumerate(traces)):
        with figure.batch_update():
            figure.data[index].update(**props)


def update_panels(figure, layout: dict, titles):
    """The layout's updates and the subplots' titles (its annotations, in order), in one batch."""
    with figure.batch_update():
        figure.update_layout(**layout)
        for annotation, title in zip(figure.layout.annotations, titles):
            annotation.text = title


def png_of(figure) -> str:
    """A matplotlib figure as base64 PNG (closed afterwards, so it is not shown a second time)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


class View(ABC):
    """Base of the course's widgets; subclasses build `widget` and `summary` and draw `snapshot()`."""

    widget: widgets.Widget
    summary: widgets.HTML
    gallery_control: str = ""

    @abstractmethod
    def snapshot(self):
        """A matplotlib figure of what the view shows now."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        figure = self.snapshot()
        figure.suptitle(SNAPSHOT_NOTE, fontsize=10, color="#555555")
        bundle["image/png"] = png_of(figure)
        bundle["text/plain"] = f"{type(self).__name__} ({SNAPSHOT_NOTE.lower()})"
        return bundle
