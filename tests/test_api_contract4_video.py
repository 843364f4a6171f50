"""Contract 4 on videos and URLs, and served face crops, on the live server. 127.0.0.1 is allow-listed by
address here so that the local media server can be reached; test_api_contract4_url.py refuses it."""
from __future__ import annotations

import base64
import struct

import pytest

from tests.conftest import b64file, wait_for

API_CONFIG = {"url_inputs": True, "url_allow_hosts": ["127.0.0.1"], "url_max_bytes": 2 * 1024 * 1024,
              "url_total_timeout_s": 3.0, "face_url_ttl_s": 4}
CLIP = "face_recognition/examples/short_hamilton_clip.mp4"


def detect(api, **fields):
    return api.post("/face/detect", fields, {"Authorization": f"Bearer {api.key}"})


def no_temp_files(api):
    return not any(api.tmpdir.glob("faced-video-*"))


@pytest.fixture(scope="module")
def clip_answer(api, faces_dir):
    status, body, _ = detect(api, img=b64file(faces_dir / CLIP), num_frames=10)
    assert status == 200, body
    return body


def test_base64_video_frames(api, clip_answer):
    frames = clip_answer["faces_obj"]
    assert clip_answer["error_code"] == 0 and len(frames) == 10
    keys = [int(k) for k in frames]
    assert keys == sorted(keys) and keys[0] == 0 and len(set(keys)) == 10
    times = [frames[str(k)]["frame_time"] for k in keys]
    assert all(isinstance(t, (int, float)) for t in times) and times == sorted(times) and times[0] == 0
    assert len(set(times)) == 10
    fps = keys[-1] / times[-1]
    assert all(abs(k / fps - t) < 0.01 for k, t in zip(keys, times))  # frame_time = index / fps
    assert sum(len(f["region"]) for f in frames.values()) > 0
    previous = None
    gone = 0
    for key in keys:
        frame = frames[str(key)]
        if previous is None:
            assert frame["removed"] == []
        else:
            assert all(box in previous["region"] for box in frame["removed"])
            if not frame["region"]:  # nobody left in this frame: every face of the previous one is gone
                assert frame["removed"] == previous["region"]
            gone += len(frame["removed"])
        previous = frame
    assert gone > 0  # faces leave in this clip (between its cuts)
    assert no_temp_files(api)


def test_same_clip_by_url(api, media_server, faces_dir, clip_answer):
    media_server.files["clip.mp4"] = (faces_dir / CLIP).read_bytes()
    media_server.types["clip.mp4"] = "video/mp4"
    status, body, _ = detect(api, url=media_server.url("/file/clip.mp4"), num_frames=10, img="ignored")
    assert status == 200, body
    assert body == clip_answer
    # via a redirect on the allow-listed host, re-checked at each hop
    status, body, _ = detect(api, url=media_server.url("/redirect?to=/file/clip.mp4"), num_frames=10)
    assert status == 200 and body == clip_answer
    assert no_temp_files(api)


@pytest.mark.parametrize("target, code", [
    ("http://localhost:{port}/file/clip.mp4", "URL_HOST_NOT_ALLOWED"),
    ("http://[::1]:{port}/file/clip.mp4", "URL_HOST_NOT_ALLOWED"),
    ("http://10.0.0.1/media.mp4", "URL_HOST_NOT_ALLOWED"),
    ("http://169.254.169.254/latest/meta-data/", "URL_HOST_NOT_ALLOWED"),
    ("file:///etc/passwd", "URL_SCHEME_REFUSED"),
])
def test_redirect_to_refused_target(api, media_server, target, code):
    before = list(media_server.requests)
    url = media_server.url("/redirect?to=" + target.format(port=media_server.port))
    status, body, _ = detect(api, url=url)
    assert (status, body["error_code"], body["code"]) == (400, 1, code), body
    after = media_server.requests[len(before):]
    assert [path for path, _ in after] == [url.split(str(media_server.port), 1)[1]]  # only the redirect itself


def test_endless_stream_is_cut_at_the_limit(api, media_server):
    status, body, _ = detect(api, url=media_server.url("/endless"))
    assert (status, body["code"]) == (413, "URL_TOO_LARGE"), body
    assert media_server.endless_done.wait(30)  # the fetcher hung up: the server's writes failed
    assert media_server.endless_sent < 2 * 1024 * 1024 + 16 * 1024 * 1024  # limit + socket buffers at most


def test_trickle_hits_the_total_time_limit(api, media_server):
    status, body, _ = detect(api, url=media_server.url("/trickle"))
    assert (status, body["code"]) == (400, "URL_TIMEOUT"), body


def test_content_checked_against_the_bytes(api, media_server, faces_dir):
    media_server.files["page.html"] = b"<html>not media</html>"
    media_server.types["page.html"] = "text/html"
    media_server.files["liar.jpg"] = (faces_dir / CLIP).read_bytes()
    media_server.types["liar.jpg"] = "image/jpeg"
    for name in ("page.html", "liar.jpg"):
        status, body, _ = detect(api, url=media_server.url(f"/file/{name}"))
        assert (status, body["code"]) == (400, "URL_CONTENT_REFUSED"), body
    status, body, _ = detect(api, url=media_server.url("/file/missing"))
    assert (status, body["code"]) == (400, "URL_FETCH_FAILED"), body


def test_contract3_url_input(api, media_server, faces_dir):
    media_server.files["obama.jpg"] = (faces_dir / "face_recognition/examples/obama.jpg").read_bytes()
    media_server.types["obama.jpg"] = "image/jpeg"
    basic = base64.b64encode(f"{api.key_name}:{api.key}".encode()).decode()
    status, body, _ = api.post("/api/v1/face/detect", {"faceImageBase": media_server.url("/file/obama.jpg")},
                               {"Authorization": f"Basic {basic}"})
    assert status == 200 and body["hasError"] is False, body
    status, body, _ = api.post("/api/v1/face/detect", {"faceImageBase": media_server.url("/file/clip.mp4")},
                               {"Authorization": f"Basic {basic}"})
    assert (status, body["error"]) == (400, "URL_CONTENT_REFUSED"), body


def get_bytes(api, path: str, headers: dict) -> tuple[int, bytes, str]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type")
    finally:
        connection.close()


def crop_path(api, url: str) -> str:
    assert url.startswith(api.url + "/faces/") and url.endswith(".jpg")
    return url[len(api.url):]


def test_face_crop_urls(api, faces_dir):
    status, body, _ = detect(api, img=b64file(faces_dir / "face_recognition/examples/two_people.jpg"),
                             return_face_url=True)
    assert status == 200
    frame = body["faces_obj"]["0"]
    assert len(frame["face_urls"]) == len(frame["region"]) == 2
    paths = [crop_path(api, url) for url in frame["face_urls"]]
    assert len(set(paths)) == 2 and all(len(p) > len("/faces/.jpg") + 30 for p in paths)
    status, data, content_type = get_bytes(api, paths[0], {"Authorization": f"Bearer {api.key}"})
    assert status == 200 and content_type == "image/jpeg" and data.startswith(b"\xff\xd8\xff")
    from device.imaging import decode_image

    image = decode_image(data)
    assert image.shape[1] == frame["crop_region"][0][2] and image.shape[0] == frame["crop_region"][0][3]
    assert api.request("GET", paths[1], headers={"x-api-key": api.key})[0] == 200
    status, body, _ = api.request("GET", paths[0])
    assert (status, body["code"]) == (401, "API_KEY_MISSING")
    status, body, _ = api.request("GET", paths[0], headers={"Authorization": "Bearer wrong"})
    assert (status, body["code"]) == (403, "API_KEY_INVALID")
    status, body, _ = api.request("GET", "/faces/not-a-token.jpg", headers={"x-api-key": api.key})
    assert (status, body["code"]) == (404, "FACE_URL_NOT_FOUND")
    # face_url_ttl_s = 4 here: gone after its time
    wait_for(lambda: api.request("GET", paths[0], headers={"x-api-key": api.key})[0] == 404, timeout=60,
             what="the crop to expire")
    status, body, _ = api.request("GET", paths[1], headers={"x-api-key": api.key})
    assert (status, body["code"]) == (404, "FACE_URL_NOT_FOUND")


def test_person_erasure_removes_crops(api, faces_dir):
    photo = b64file(faces_dir / "face_recognition/examples/obama.jpg")
    keyed = {"x-api-key": api.key}
    assert api.post("/collections", {"collection_name": "crops"}, keyed)[0] == 201
    status, person, _ = api.post("/persons", {"collection_name": "crops", "person_name": "Barack",
                                              "images_base_64": [photo]}, keyed)
    assert status == 201, person
    status, body, _ = detect(api, img=photo, return_face_url=True)
    path = crop_path(api, body["faces_obj"]["0"]["face_urls"][0])
    assert api.request("GET", path, headers=keyed)[0] == 200
    assert api.request("DELETE", f"/persons/{person['person_id']}", headers=keyed)[0] == 200
    assert api.request("GET", path, headers=keyed)[0] == 404


def write_avi(path, frames: int, fps: float = 1.0):
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 64))
    for i in range(frames):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    return bytearray(path.read_bytes())


def test_bad_videos(api, faces_dir, tmp_path):
    clip = (faces_dir / CLIP).read_bytes()
    empty = write_avi(tmp_path / "empty.avi", 0)
    long = write_avi(tmp_path / "long.avi", 3)
    # The header claims 1 frame per 3000 s (stream header dwScale/dwRate, main header's us per frame): the
    # three frames make a clip of 2.5 hours.
    strh = long.index(b"strh")
    struct.pack_into("<II", long, strh + 28, 3000, 1)
    avih = long.index(b"avih")
    struct.pack_into("<I", long, avih + 8, 3000 * 10**6)
    cases = [(clip[: len(clip) // 2], 400, "INVALID_VIDEO"),
             (bytes(empty), 400, "VIDEO_NO_FRAMES"),
             (b"\0\0\0\x18ftypmp42" + bytes(2000), 400, "INVALID_VIDEO"),
             (b"this is plain text, neither an image nor a video", 400, "INVALID_IMAGE"),
             (bytes(long), 413, "VIDEO_TOO_LONG")]
    for data, want_status, code in cases:
        status, body, _ = detect(api, img=base64.b64encode(data).decode())
        assert (status, body["error_code"], body["code"]) == (want_status, 1, code), (code, body)
    assert no_temp_files(api) and list(api.tmpdir.iterdir()) == []
    # the same short AVI with an honest header is read
    status, body, _ = detect(api, img=base64.b64encode(write_avi(tmp_path / "ok.avi", 3)).decode(), num_frames=5)
    assert status == 200 and list(body["faces_obj"]) == ["0", "1", "2"]
    assert [f["frame_time"] for f in body["faces_obj"].values()] == [0, 1, 2]
