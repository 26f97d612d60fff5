"""(scale, max_shift) of the noised guides on every 4th shapes-bench prompt."""
import json, sys, time
sys.path.insert(0, "/work/main")
from atelier.eval.shapes_bench import generate_and_judge, paired_difference, summarize
from atelier.kinds.registry import load_model
from atelier.pipelines.steering import SteeredText2Image, classifier_steer, noised_clip_steer
from atelier.shapes.bench import load_suite

suite = load_suite()[::4]
model = load_model("shapes-ldm-minilm")
cls = load_model("shapes-classifier-noised")
ncl = load_model("shapes-clip-noised")
base, _ = generate_and_judge(model, suite, options=model.defaults, samples=1, progress=False, batch=8)
print("CFG", len(suite), summarize(base)["overall"]["all"].accuracy, flush=True)
arms = [("cls", 0.3, 1.0), ("cls", 0.3, 10.0), ("cls", 1.0, 10.0), ("cls", 3.0, 10.0), ("cls", 3.0, 100.0),
        ("cls", 0.1, 10.0), ("clip", 0.3, 10.0), ("clip", 0.3, 100.0), ("clip", 1.0, 100.0)]
out = []
for which, shift, scale in arms:
    if which == "cls":
        steer = classifier_steer(cls.classifier, cls.space, scale, who="c", max_shift=shift)
    else:
        steer = noised_clip_steer(ncl.model, ncl.space, scale, who="n", max_shift=shift)
    t = time.time()
    judged, _ = generate_and_judge(SteeredText2Image(model, steer, {}), suite, options=model.defaults, samples=1, progress=False, batch=8)
    d = paired_difference(base, judged)["overall"]["all"]
    acc = summarize(judged)['overall']['all'].accuracy
    out.append((which, shift, scale, acc, d.accuracy, d.low, d.high))
    print(f"{which} shift {shift} scale {scale}: pass {acc:.3f} diff {d.accuracy:+.3f} [{d.low:+.2f},{d.high:+.2f}] {time.time()-t:.0f}s", flush=True)
json.dump(out, open("/tmp/s25/steer/shift4.json", "w"))
