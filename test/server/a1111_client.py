"""A minimal AUTOMATIC1111 API client, written from A1111's documented /sdapi/v1 API only (standard library,
no knowledge of diffuse). Usage: python3 a1111_client.py http://127.0.0.1:7860
Prints one JSON line summarising what it got; exits non-zero on any failure."""
import base64
import json
import struct
import sys
import urllib.request


def call(base, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def png_size(b64):
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", raw[16:24])


def main(base):
    t = call(base, "/sdapi/v1/txt2img", {
        "prompt": "a lighthouse at dusk", "negative_prompt": "", "seed": 5, "steps": 4,
        "cfg_scale": 7, "width": 64, "height": 64, "sampler_name": "Euler a",
    })
    info = json.loads(t["info"])
    init = t["images"][0]
    i = call(base, "/sdapi/v1/img2img", {
        "prompt": "a lighthouse at night", "init_images": [init], "denoising_strength": 0.5,
        "steps": 4, "seed": 6, "width": 64, "height": 64,
    })
    p = call(base, "/sdapi/v1/png-info", {"image": "data:image/png;base64," + i["images"][0]})
    # A seed as Python writes it: a JSON integer of any size (2**64 - 1 here), read back exactly.
    big = call(base, "/sdapi/v1/txt2img", {"prompt": "a lighthouse", "seed": 2**64 - 1, "steps": 1, "width": 64, "height": 64})
    big_info = json.loads(big["info"])
    big_png = call(base, "/sdapi/v1/png-info", {"image": big["images"][0]})
    print(json.dumps({
        "big_seed_exact": big_info["seed"] == 2**64 - 1 and big_info["all_seeds"] == [2**64 - 1] and big["parameters"]["seed"] == 2**64 - 1,
        "big_seed_pnginfo": big_png["parameters"].get("Seed"),
        "txt2img_size": png_size(init),
        "txt2img_seed": info["seed"],
        "img2img_size": png_size(i["images"][0]),
        "img2img_seed": json.loads(i["info"])["seed"],
        "pnginfo_prompt": p["parameters"].get("Prompt"),
        "pnginfo_steps": p["parameters"].get("Steps"),
        "pnginfo_denoising": p["parameters"].get("Denoising strength"),
    }))


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"))
