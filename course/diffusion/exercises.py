"""The exercises of the diffusion notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("diffusion.ideal_denoiser", "the ideal denoiser of a training set as a softmax over the "
             "points, stable at small sigma", "course.diffusion.ideal:ideal_denoiser"),
    Exercise("diffusion.edm_output", "EDM's preconditioning after the network: c_skip x + c_out F "
             "(Table 1)", "course.diffusion.edm:edm_output"),
    Exercise("diffusion.heun_step", "one step of Algorithm 2: the Euler slope, Heun's correction where "
             "sigma_next > 0, then the next step's churn", "course.diffusion.samplers:heun_step"),
)
