"""The trajectory widget: particles carried from noise to data by a sampler, against the exact solution.

Karras, Aittala, Aila and Laine 2022 (EDM, arXiv:2206.00364), Algorithms 1 and 2, on a 2-D toy whose
denoiser is known in closed form: a ring of eight Gaussians (`course.diffusion.mixtures.ring`), the
components labelled 0, 1, 0, 1, ... (`course.diffusion.guidance.LabelledMixture`). Three panels:

- the particles' paths, each in the colour of the mixture component it lands in (its nearest mean).
  A state x at noise level sigma is drawn as x sigma_data / sqrt(sigma^2 + sigma_data^2), the
  variance-preserving scale (DDPM's x_t = alpha_t x; EDM's c_in x times sigma_data), so that the noise
  at sigma = 80 and the data share one frame; grey rings are the exact ODE's endpoints;
- the noise levels sigma_i of the schedule, one marker per step taken (and sigma_hat_i where churn
  climbs before a step, Algorithm 2);
- the RMS distance of the endpoints from the exact probability-flow ODE solution from the same noise
  (`course.diffusion.ode.solve_pf_ode`, RK4 with the same exact denoiser; `ode.rms_error`), against
  the number of denoiser evaluations (NFE), one curve per sampler at the other controls' settings.
  Every run starts from sigmas[0] z and the exact solution from SIGMA_MAX z, with the same unit noise
  z: a schedule whose levels start lower (the log-SNR schedules at few steps) is charged for the noise
  levels it skips; with churn (an SDE) the endpoints leave the ODE's by design.

Controls: the sampler (Euler, Heun, and the samplers the caller passes, `samplers={"name": fn}` with
`fn(denoiser, x, sigmas, callback=None) -> x`), the NFE (Heun takes 2 steps - 1 evaluations, Euler and
the caller's samplers one per step; the evaluations are counted), rho (EDM's schedule only), S_churn
(Euler and Heun only), the guidance scale w and its class: the particles follow D_u + w (D_c - D_u)
(Ho and Salimans 2022, eq. 6; `guidance.guided_denoiser`), w = 0 unconditional; and the schedule,
EDM's `edm_sigmas(steps, rho=rho)` or a log-SNR schedule (`schedules.sigmas_from_schedule`).
The logic (`settings_for`, `sigmas_for`, `trajectories`, `landing_component`, `exact_endpoints`,
`error_curve`, `summary`, `panel_traces`; the exact solutions and the curves cached) is plain Python,
tested without a browser.
"""
import functools
import math
import textwrap
from dataclasses import dataclass, replace

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int, check_tensor
from course.diffusion import edm, guidance, mixtures, ode, samplers as library, schedules
from course.train import one_thread
from course.widgets.view import FitPlotsToWidth, View, control_layout, update_traces, wrapping_row

WHERE = "widgets.trajectories"
LABELLED = guidance.LabelledMixture(mixtures.ring(8), torch.arange(8) % 2)
MEANS = LABELLED.mixture.means  # [8, 2]
SIGMA_DATA = float((MEANS.pow(2).sum(1).mean() / 2 + LABELLED.mixture.stds.pow(2).mean()).sqrt())
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0
PARTICLES, MAX_NFE = 256, 63
EXACT_STEPS = 100  # RK4 steps: 5e-5 from the 1000-step solution, under 1% of the smallest error shown
NFE_GRID = (1, 3, 5, 9, 17, 33, 63)  # the error panel's curves (odd: every sampler meets them exactly)
EXTRA_GRID = (1, 2, 4, 8, 16, 32)  # the caller's samplers' curves (few-step samplers; half the cost)
EDM = "EDM (rho)"
SCHEDULES = (EDM, *schedules.SCHEDULES)
BUILT_IN = ("Euler", "Heun")
# One colour per mixture component; the means, the exact endpoints, the samplers' curves and churn's
# levels in colours that no component has.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MEAN, EXACT, CHURN = "#000000", "#7f7f7f", "#fd8d3c"
SAMPLER_COLORS = ("#393b79", "#bcbd22", "#637939", "#843c39", "#5254a3", "#8c6d31")
EXTENT = 4.6  # the particle panel shows [-EXTENT, EXTENT]^2


@dataclass(frozen=True)
class Settings:
    """What the controls say: a sampler run on the guided toy."""

    sampler: str = "Heun"
    nfe: int = 17
    rho: float = 7.0
    churn: float = 0.0
    guidance: float = 0.0
    target_class: int = 0
    schedule: str = EDM


def _number(where: str, name: str, value, low: float = 0.0):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < math.inf:
        raise ValueError(f"{where}: `{name}` must be a finite number >= {low:g}; got {value!r}.")
    return float(value)


def check_samplers(where: str, extra) -> dict:
    """The caller's samplers: {name: fn(denoiser, x, sigmas, callback=None) -> x}, names new."""
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise TypeError(f"{where}: `samplers` must be a dict {{name: fn}}; got {type(extra).__name__}.")
    for name, fn in extra.items():
        if not isinstance(name, str) or name in BUILT_IN or not callable(fn):
            raise ValueError(f"{where}: `samplers` must map new names (not {BUILT_IN}) to functions "
                             f"fn(denoiser, x, sigmas, callback=None); got {name!r}: {fn!r}.")
    return extra


def settings_for(where: str = WHERE, extra=None, **controls) -> Settings:
    """The controls as checked `Settings`; each bad one raises an error that names it."""
    s = Settings(**controls)
    names = (*BUILT_IN, *check_samplers(where, extra))
    if s.sampler not in names:
        raise ValueError(f"{where}: `sampler` must be one of {names}; got {s.sampler!r}.")
    check_int(where, "nfe", s.nfe, low=1)
    if s.schedule not in SCHEDULES:
        raise ValueError(f"{where}: `schedule` must be one of {SCHEDULES}; got {s.schedule!r}.")
    check_int(where, "target_class", s.target_class, low=0, high=LABELLED.classes - 1)
    rho = _number(where, "rho", s.rho)
    if rho == 0:
        raise ValueError(f"{where}: `rho` must be > 0; got {s.rho!r}.")
    return replace(s, rho=rho, churn=_number(where, "churn", s.churn),
                   guidance=_number(where, "guidance", s.guidance))


def steps_for(sampler: str, nfe: int) -> int:
    """Steps that spend at most `nfe` evaluations: Heun's N steps take 2 N - 1, the others' N."""
    return (nfe + 1) // 2 if sampler == "Heun" else nfe


def sigmas_for(schedule: str, steps: int, rho: float = 7.0) -> torch.Tensor:
    """The levels a sampler takes: EDM's eq. 5 with rho, or a log-SNR schedule. -> [<= steps + 1]"""
    if schedule not in SCHEDULES:
        raise ValueError(f"{WHERE}.sigmas_for: `schedule` must be one of {SCHEDULES}; got {schedule!r}.")
    if schedule == EDM:
        return edm.edm_sigmas(steps, SIGMA_MIN, SIGMA_MAX, rho)
    return schedules.sigmas_from_schedule(schedule, steps, SIGMA_MIN, SIGMA_MAX)


def denoiser_for(w: float, target_class: int):
    """D_u + w (D_c - D_u) on the labelled ring (Ho and Salimans 2022, eq. 6), as denoiser(x, sigma)."""
    return guidance.guided_denoiser(LABELLED, target_class, w)


def start_noise(particles: int = PARTICLES, seed: int = 0) -> torch.Tensor:
    """Unit Gaussian noise z [particles, 2], float64, one tensor per (particles, seed); a sampler
    starts from sigmas[0] z."""
    check_int(f"{WHERE}.start_noise", "particles", particles, low=1)
    check_int(f"{WHERE}.start_noise", "seed", seed)
    return _noise(particles, seed)


@functools.lru_cache(maxsize=4)
def _noise(particles: int, seed: int) -> torch.Tensor:
    return torch.randn(particles, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@dataclass
class Path:
    """A sampler's run: the states after every step and the levels they are at."""

    sampler: str
    sigmas: torch.Tensor      # [S + 1] the schedule
    sigma_hats: torch.Tensor  # [S] the levels each step starts from (after churn), Euler and Heun
    states: torch.Tensor      # [T + 1, N, 2] the start, then the state after each step
    levels: torch.Tensor      # [T + 1] the noise level of each state
    evaluations: int          # denoiser calls, counted

    @property
    def end(self) -> torch.Tensor:
        return self.states[-1]


def trajectories(denoiser, noise, sigmas, sampler: str = "Heun", churn: float = 0.0, samplers=None,
                 seed: int = 0) -> Path:
    """Run `sampler` from x = sigmas[0] noise and collect its states through the samplers' callback
    (EDM's Algorithms 1 and 2). noise [N, 2], sigmas [S + 1] decreasing to 0 -> Path."""
    where = f"{WHERE}.trajectories"
    extra = check_samplers(where, samplers)
    check_tensor(where, "noise", noise, ndim=2, kind="float")
    sigmas = edm.check_sigmas(where, sigmas)
    if sampler not in (*BUILT_IN, *extra):
        raise ValueError(f"{where}: `sampler` must be one of {(*BUILT_IN, *extra)}; got {sampler!r}.")
    churn = _number(where, "churn", churn)
    calls, steps = [0], []

    def counted(x, sigma):
        calls[0] += 1
        return denoiser(x, sigma)

    x0 = sigmas[0] * noise
    if sampler in BUILT_IN:
        end = library.sample_heun(counted, x0, sigmas, s_churn=churn, second_order=sampler == "Heun",
                                  generator=torch.Generator().manual_seed(seed), callback=steps.append)
    else:
        end = extra[sampler](counted, x0, sigmas, callback=steps.append)
        library.check_denoised(f"{where}: sampler {sampler!r}", end, x0)
    bad = [s for s in steps if not (isinstance(s, dict) and isinstance(s.get("x"), torch.Tensor))]
    if bad:
        raise ValueError(f"{where}: sampler {sampler!r} must call `callback` with a dict holding the state "
                         f"'x' (as the library's samplers do); got {str(bad[0])[:80]}.")
    states = [x0, *(s["x"] for s in steps)]
    levels = [float(sigmas[0]), *(s.get("sigma_next", 0.0) for s in steps)]
    if not steps or not torch.equal(steps[-1]["x"], end):  # a sampler that reports no last step
        states, levels = [*states, end], [*levels, 0.0]
    hats = [s["sigma_hat"] for s in steps if "sigma_hat" in s]
    return Path(sampler, sigmas, torch.tensor(hats, dtype=torch.float64), torch.stack(states).detach(),
                torch.tensor(levels, dtype=torch.float64), calls[0])


def landing_component(x, means=MEANS) -> torch.Tensor:
    """The mixture component each particle lands in: its nearest mean. x [N, 2], means [K, 2] -> [N]"""
    check_tensor(f"{WHERE}.landing_component", "x", x, ndim=2, kind="float")
    return torch.cdist(x.double(), means.double()).argmin(1)


def exact_endpoints(w: float = 0.0, target_class: int = 0, particles: int = PARTICLES,
                    seed: int = 0) -> torch.Tensor:
    """The exact probability-flow ODE solution (RK4 in log sigma, EXACT_STEPS steps) from the widget's
    noise at SIGMA_MAX, with the same guided denoiser; computed once per (w, class), the class only
    where w > 0. -> [particles, 2]"""
    w = _number(f"{WHERE}.exact_endpoints", "w", w)
    check_int(f"{WHERE}.exact_endpoints", "target_class", target_class, low=0, high=LABELLED.classes - 1)
    return _exact(round(w, 6), target_class if w > 0 else 0, particles, seed)


@functools.lru_cache(maxsize=32)
def _exact(w: float, target_class: int, particles: int, seed: int) -> torch.Tensor:
    z = start_noise(particles, seed)
    with one_thread():
        return ode.solve_pf_ode(denoiser_for(w, target_class), SIGMA_MAX * z, SIGMA_MAX, steps=EXACT_STEPS)


def simulate(s: Settings, samplers=None, particles: int = PARTICLES, seed: int = 0) -> Path:
    """The run the settings describe, on the widget's noise."""
    sigmas = sigmas_for(s.schedule, steps_for(s.sampler, s.nfe), s.rho)
    with one_thread():
        return trajectories(denoiser_for(s.guidance, s.target_class), start_noise(particles, seed), sigmas,
                            s.sampler, s.churn if s.sampler in BUILT_IN else 0.0, samplers, seed)


def exact_for(s: Settings, particles: int = PARTICLES, seed: int = 0) -> torch.Tensor:
    """The exact endpoints for the settings' guidance."""
    return exact_endpoints(s.guidance, s.target_class, particles, seed)


def error_curve(s: Settings, samplers=None, particles: int = PARTICLES, seed: int = 0, grid=NFE_GRID):
    """(evaluations, RMS error against the exact solution) at each NFE of `grid`, the other settings
    kept. -> two lists"""
    exact = exact_for(s, particles, seed)
    runs = [simulate(replace(s, nfe=n), samplers, particles, seed) for n in grid]
    return [p.evaluations for p in runs], [ode.rms_error(p.end, exact) for p in runs]


@functools.lru_cache(maxsize=256)
def _curve(key: Settings, fn, particles: int, seed: int):
    grid = NFE_GRID if fn is None else EXTRA_GRID
    return error_curve(key, None if fn is None else {key.sampler: fn}, particles, seed, grid)


def curve_of(s: Settings, samplers=None, particles: int = PARTICLES, seed: int = 0):
    """`error_curve` on NFE_GRID (the caller's samplers on EXTRA_GRID), computed once per setting that
    changes it: what the error panel draws for a sampler."""
    fn = None if s.sampler in BUILT_IN else check_samplers(WHERE, samplers)[s.sampler]
    key = replace(s, nfe=0, churn=s.churn if fn is None else 0.0, rho=s.rho if s.schedule == EDM else 0.0,
                  target_class=s.target_class if s.guidance > 0 else 0)
    return _curve(key, fn, particles, seed)


def summary(s: Settings, path: Path, error: float) -> str:
    """One line: the run, its error against the exact solution, the guidance, where particles land."""
    where_to = landing_component(path.end)
    distance = torch.cdist(path.end, MEANS).min(1).values  # [N] to the nearest mean
    near = 100 * float((distance <= 3 * LABELLED.mixture.stds.max()).double().mean())
    in_class = 100 * float((LABELLED.labels[where_to] == s.target_class).double().mean())
    schedule = f"EDM rho = {s.rho:g}" if s.schedule == EDM else s.schedule
    kind = "ODE" if s.churn == 0 or s.sampler not in BUILT_IN else f"SDE, S_churn = {s.churn:g}"
    guided = ("unconditional (guidance w = 0)" if s.guidance == 0 else
              f"guided to class {s.target_class}, D_u + w (D_c - D_u) at w = {s.guidance:g}")
    return (f"{s.sampler}, {path.evaluations} evaluations over {len(path.sigmas) - 1} steps from sigma "
            f"{float(path.sigmas[0]):.3g} ({schedule}; {kind}): RMS error {error:.3g} against the exact ODE "
            f"solution; {guided}; the particles land on {len(where_to.unique())} of {len(MEANS)} components "
            f"({near:.0f}% within 3 std of a mean), {in_class:.0f}% in class {s.target_class}")


def vp_scale(states, levels) -> torch.Tensor:
    """States drawn at the variance-preserving scale x sigma_data / sqrt(sigma^2 + sigma_data^2).
    states [T, N, 2], levels [T] -> [T, N, 2]"""
    return states * (SIGMA_DATA / (levels ** 2 + SIGMA_DATA ** 2).sqrt())[:, None, None]


def _paths(drawn, pick):
    """x and y lists of the picked particles' paths, separated by None (one plotly trace)."""
    xs, ys = [], []
    for n in pick.nonzero().flatten().tolist():
        xs += drawn[:, n, 0].tolist() + [None]
        ys += drawn[:, n, 1].tolist() + [None]
    return xs, ys


def panel_traces(path: Path, exact, s: Settings, curves: dict, error: float) -> list[dict]:
    """The properties of every trace, in trace order: each component's paths, then its particles' ends,
    the means, the exact endpoints, the levels sigma_i and sigma_hat_i, one error curve per sampler in
    `curves` ({name: (evaluations, errors)}), and this run's mark on its curve."""
    drawn = vp_scale(path.states, path.levels)
    landed = landing_component(path.end)
    out = [dict(zip("xy", _paths(drawn, landed == k))) for k in range(len(MEANS))]
    out += [dict(x=drawn[-1, landed == k, 0].tolist(), y=drawn[-1, landed == k, 1].tolist())
            for k in range(len(MEANS))]
    out.append(dict(x=MEANS[:, 0].tolist(), y=MEANS[:, 1].tolist()))
    out.append(dict(x=exact[:, 0].tolist(), y=exact[:, 1].tolist()))
    levels = path.sigmas[:-1]  # the last level, 0, has no place on a log axis
    out.append(dict(x=list(range(len(levels))), y=levels.tolist()))
    hats = path.sigma_hats
    climbed = hats > path.sigmas[:len(hats)]  # churn's climbs (none without churn)
    out.append(dict(x=climbed.nonzero().flatten().tolist(), y=hats[climbed].tolist()))
    out += [dict(x=evaluations, y=errors) for evaluations, errors in curves.values()]
    out.append(dict(x=[path.evaluations], y=[error],
                    marker=dict(color=sampler_color(curves, s.sampler))))
    return out


def sampler_color(names, name: str) -> str:
    return SAMPLER_COLORS[list(names).index(name) % len(SAMPLER_COLORS)]


def component_name(k: int) -> str:
    return f"component {k} (class {int(LABELLED.labels[k])})"


class TrajectoryWidget(View):
    """Controls (sampler, NFE, schedule, rho, S_churn, guidance w and its class) over the three panels.

    `samplers`, when given, adds samplers by name: {name: fn(denoiser, x, sigmas, callback=None) -> x}
    (e.g. a trained consistency model's, or DC-Solver's); the widget counts their evaluations and takes
    one step per evaluation. rho applies to EDM's schedule, S_churn to Euler and Heun, the class to
    w > 0: elsewhere they are disabled.
    """

    gallery_control = "evaluations (NFE)"

    def __init__(self, sampler: str = "Heun", nfe: int = 17, rho: float = 7.0, churn: float = 0.0,
                 guidance: float = 0.0, target_class: int = 0, schedule: str = EDM, samplers=None,
                 seed: int = 0):
        where = "TrajectoryWidget"
        check_int(where, "nfe", nfe, low=1, high=MAX_NFE)
        s = settings_for(where, samplers, sampler=sampler, nfe=nfe, rho=rho, churn=churn, guidance=guidance,
                         target_class=target_class, schedule=schedule)
        check_int(where, "seed", seed)
        self.samplers, self.seed = check_samplers(where, samplers), seed
        self.names = (*BUILT_IN, *self.samplers)
        self._busy = False
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.sampler = widgets.ToggleButtons(options=self.names, value=s.sampler, description="sampler",
                                             style={"button_width": "82px"},
                                             layout=widgets.Layout(flex="0 0 auto"))
        self.nfe = widgets.IntSlider(value=s.nfe, min=1, max=MAX_NFE, description="evaluations (NFE)",
                                     layout=control_layout(), **style)
        self.schedule = widgets.Dropdown(options=SCHEDULES, value=s.schedule, description="schedule",
                                         layout=control_layout(220), style=style["style"])
        self.rho = widgets.FloatSlider(value=s.rho, min=min(1.0, s.rho), max=max(12.0, s.rho), step=0.5,
                                       description="rho", layout=control_layout(), **style)
        self.churn = widgets.FloatSlider(value=s.churn, min=0.0, max=max(40.0, s.churn), step=1.0,
                                         description="S_churn", layout=control_layout(), **style)
        self.guidance = widgets.FloatSlider(value=s.guidance, min=0.0, max=max(4.0, s.guidance), step=0.25,
                                            description="guidance w", layout=control_layout(), **style)
        self.target_class = widgets.Dropdown(options=[(f"class {c}", c) for c in range(LABELLED.classes)],
                                             value=s.target_class, description="towards",
                                             layout=control_layout(220), style=style["style"])
        self.summary = widgets.HTML()
        self.figure = self._empty_figure()
        controls = (self.sampler, self.nfe, self.schedule, self.rho, self.churn, self.guidance,
                    self.target_class)
        for control in controls:
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.sampler, self.nfe, self.schedule]), wrapping_row([self.rho, self.churn]),
            wrapping_row([self.guidance, self.target_class]), self.summary, self.figure, FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        self.update()

    def settings(self) -> Settings:
        return Settings(self.sampler.value, self.nfe.value, self.rho.value, self.churn.value,
                        self.guidance.value, self.target_class.value, self.schedule.value)

    def curves(self, s: Settings) -> dict:
        """Every sampler's error curve at the other settings."""
        return {name: curve_of(replace(s, sampler=name), self.samplers, seed=self.seed)
                for name in self.names}

    @one_thread()
    def state(self):
        """Everything the panels draw for the current controls: settings, path, exact ends, curves, error."""
        s = self.settings()
        path = simulate(s, self.samplers, seed=self.seed)
        exact = exact_for(s, seed=self.seed)
        return s, path, exact, self.curves(s), ode.rms_error(path.end, exact)

    def _empty_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, column_widths=[0.4, 0.25, 0.35], horizontal_spacing=0.08,
                            subplot_titles=("particles, noise to data", "noise levels taken",
                                            "error against the exact ODE"))
        for k in range(len(MEANS)):
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=PALETTE[k], width=0.6), opacity=0.45,
                                     hoverinfo="skip", legendgroup=str(k), showlegend=False), 1, 1)
        for k in range(len(MEANS)):
            fig.add_trace(go.Scatter(mode="markers", name=component_name(k), legendgroup=str(k),
                                     marker=dict(color=PALETTE[k], size=5)), 1, 1)
        fig.add_trace(go.Scatter(mode="markers", name="means", marker=dict(
            color=MEAN, symbol="x", size=9)), 1, 1)
        fig.add_trace(go.Scatter(mode="markers", name="exact ODE ends", opacity=0.7, marker=dict(
            color=EXACT, symbol="circle-open", size=6, line=dict(width=1))), 1, 1)
        fig.add_trace(go.Scatter(mode="lines+markers", name="sigma_i", line=dict(color=MEAN, width=1),
                                 marker=dict(size=5)), 1, 2)
        fig.add_trace(go.Scatter(mode="markers", name="sigma_hat_i (churn)", marker=dict(
            color=CHURN, symbol="triangle-up", size=7)), 1, 2)
        for name in self.names:
            fig.add_trace(go.Scatter(mode="lines+markers", name=name, line=dict(
                color=sampler_color(self.names, name))), 1, 3)
        fig.add_trace(go.Scatter(mode="markers", name="this run", marker=dict(
            size=14, symbol="circle-open", line=dict(width=2.5))), 1, 3)
        fig.update_annotations(font_size=14)  # the subplot titles
        fig.update_layout(template="plotly_white", height=520, autosize=True,
                          margin=dict(l=50, r=10, t=40, b=40),
                          legend=dict(orientation="h", x=0, y=-0.14, xanchor="left", yanchor="top"))
        fig.update_xaxes(range=[-EXTENT, EXTENT], title_text="x sigma_data / sqrt(sigma^2 + sigma_data^2)",
                         row=1, col=1)
        fig.update_yaxes(range=[-EXTENT, EXTENT], scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="step i", row=1, col=2)
        fig.update_yaxes(type="log", dtick=1, title_text="sigma", row=1, col=2)
        fig.update_xaxes(type="log", tickvals=NFE_GRID, title_text="denoiser evaluations (NFE)", row=1, col=3)
        fig.update_yaxes(type="log", dtick=1, title_text="RMS distance", row=1, col=3)
        widget = go.FigureWidget(fig)
        widget._config = {**widget._config, "responsive": True}  # follow the notebook's width
        return widget

    def _follow_modes(self):
        """Disable what does not apply; Heun's NFE moves in twos (2 steps - 1 evaluations)."""
        heun = self.sampler.value == "Heun"
        self.rho.disabled = self.schedule.value != EDM
        self.churn.disabled = self.sampler.value not in BUILT_IN
        self.target_class.disabled = self.guidance.value == 0
        self.nfe.step = 2 if heun else 1
        if heun and self.nfe.value % 2 == 0:
            self.nfe.value -= 1

    def update(self, change=None):
        if self._busy:  # Heun's NFE snapping to an odd value: one redraw, not two
            return
        self._busy = True
        try:
            self._follow_modes()
        finally:
            self._busy = False
        s, path, exact, curves, error = self.state()
        update_traces(self.figure, panel_traces(path, exact, s, curves, error))
        self.summary.value = f"<b>{summary(s, path, error)}</b>"

    def snapshot(self):
        """The three panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        s, path, exact, curves, error = self.state()
        traces = panel_traces(path, exact, s, curves, error)
        fig, axes = plt.subplots(1, 3, figsize=(11, 4.6), width_ratios=[0.4, 0.25, 0.35],
                                 layout="constrained")
        drawn = vp_scale(path.states, path.levels).numpy()
        landed = landing_component(path.end)
        for k in range(len(MEANS)):
            pick = (landed == k).numpy()
            axes[0].add_collection(LineCollection(drawn[:, pick].transpose(1, 0, 2), colors=PALETTE[k],
                                                  linewidths=0.5, alpha=0.4))
            axes[0].scatter(drawn[-1, pick, 0], drawn[-1, pick, 1], s=6, color=PALETTE[k],
                            label=component_name(k), zorder=3)
        axes[0].scatter(exact[:, 0], exact[:, 1], s=12, facecolors="none", edgecolors=EXACT, linewidths=0.5,
                        alpha=0.7, label="exact ODE ends", zorder=2)
        axes[0].scatter(MEANS[:, 0], MEANS[:, 1], marker="x", color=MEAN, s=40, label="means", zorder=4)
        axes[0].set(title="particles, noise to data", xlim=(-EXTENT, EXTENT), ylim=(-EXTENT, EXTENT),
                    aspect="equal", xlabel="x sigma_data / sqrt(sigma^2 + sigma_data^2)")
        axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2)
        axes[1].semilogy(traces[18]["x"], traces[18]["y"], "o-", color=MEAN, ms=3, lw=1, label="sigma_i")
        if traces[19]["x"]:
            axes[1].semilogy(traces[19]["x"], traces[19]["y"], "^", color=CHURN, ms=4,
                             label="sigma_hat_i (churn)")
        axes[1].set(title="noise levels taken", xlabel="step i", ylabel="sigma")
        axes[1].legend(fontsize=7)
        for name, (evaluations, errors) in curves.items():
            axes[2].loglog(evaluations, errors, "o-", color=sampler_color(self.names, name), ms=3, label=name)
        axes[2].scatter([path.evaluations], [error], s=110, facecolors="none", linewidths=2,
                        edgecolors=sampler_color(self.names, s.sampler), zorder=3, label="this run")
        axes[2].set(title="error against the exact ODE", xlabel="denoiser evaluations (NFE)",
                    ylabel="RMS distance", xticks=NFE_GRID, xticklabels=[str(n) for n in NFE_GRID])
        axes[2].legend(fontsize=7)
        fig.supxlabel(textwrap.fill(summary(s, path, error), 150), fontsize=8)
        return fig


def gallery() -> TrajectoryWidget:
    """The widget on ready data, for the browser gallery: Heun, 17 evaluations, EDM's rho = 7,
    unconditional."""
    return TrajectoryWidget(sampler="Heun", nfe=17)
