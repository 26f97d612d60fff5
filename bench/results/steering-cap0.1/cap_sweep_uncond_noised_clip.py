import sys, time
sys.path.insert(0, "/work/main")
from atelier.eval.shapes_bench import generate_and_judge, paired_difference, summarize
from atelier.kinds.registry import load_model
from atelier.pipelines.steering import SteeredText2Image, noised_clip_steer
from atelier.shapes.bench import load_suite
suite = load_suite()[::4]
model = load_model("shapes-ldm-minilm")
opts = model.defaults.overridden(guidance=0.0)
cls = load_model("shapes-clip-noised")
base, _ = generate_and_judge(model, suite, options=opts, samples=1, progress=False, batch=8)
for shift, scale in ((1.0, 100.0), (3.0, 100.0)):
    t = time.time()
    pipe = SteeredText2Image(model, noised_clip_steer(cls.model, cls.space, scale, who="c", max_shift=shift), {})
    judged, _ = generate_and_judge(pipe, suite, options=opts, samples=1, progress=False, batch=8)
    d = paired_difference(base, judged)["overall"]["all"]
    print(f"uncond nclip shift {shift} scale {scale}: pass {summarize(judged)['overall']['all'].accuracy:.3f} diff {d.accuracy:+.3f} [{d.low:+.2f},{d.high:+.2f}] {time.time()-t:.0f}s", flush=True)
