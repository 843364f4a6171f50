"""Contract 4 (unified detect, images) on the live server, URL inputs off (the default)."""
from __future__ import annotations

import json

from tests.conftest import b64file


def detect(api, headers=None, **fields):
    return api.post("/face/detect", fields, {"Authorization": f"Bearer {api.key}"} if headers is None else headers)


def test_image_frame_zero(api, faces_dir):
    image = faces_dir / "face_recognition/examples/two_people.jpg"
    status, body, _ = detect(api, img=b64file(image))
    assert status == 200, body
    assert (body["error_code"], body["error_msg"]) == (0, "SUCCESS") and list(body["faces_obj"]) == ["0"]
    frame = body["faces_obj"]["0"]
    cli = json.loads(api.faced("detect", "--json", "--no-attributes", str(image)).stdout)["faces"]
    assert len(frame["landmarks"]) == len(frame["region"]) == len(frame["landmarks_str"]) == len(cli) == 2
    assert frame["removed"] == [] and frame["frame_time"] is None
    assert frame["face_urls"] is None and frame["crop_region"] is None and frame["crop_landmarks"] is None
    for points, text, region, face in zip(frame["landmarks"], frame["landmarks_str"], frame["region"], cli):
        assert len(points) == 6 and all(isinstance(v, int) for p in points for v in p)
        left_eye, right_eye, nose, centre, mouth_left, mouth_right = points
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image left first
        assert abs(centre[0] - (mouth_left[0] + mouth_right[0]) / 2) <= 1
        assert text == ":".join(f"{x},{y}" for x, y in points[:4])
        assert region == [round(v) for v in face["box"]]
        marks = face["landmarks"]
        assert [left_eye, right_eye, nose] == [[round(v) for v in p] for p in marks[:3]]


def test_single_face_data_uri_and_crops(api, faces_dir):
    data = "data:image/jpeg;base64," + b64file(faces_dir / "face_recognition/examples/two_people.jpg")
    status, body, _ = detect(api, img=data, single_face=True, return_face_url=True, num_frames=3)
    assert status == 200
    frame = body["faces_obj"]["0"]
    assert len(frame["region"]) == len(frame["face_urls"]) == len(frame["crop_region"]) == 1
    assert frame["face_urls"][0].startswith(api.url + "/faces/")  # served crops: test_api_contract4_video.py
    x, y = frame["crop_region"][0][:2]
    assert frame["crop_landmarks"][0][0] == [frame["landmarks"][0][0][0] - x, frame["landmarks"][0][0][1] - y]


def test_no_face_is_empty_success(api, faces_dir):
    status, body, _ = detect(api, img=b64file(faces_dir / "noface/brick.png"))
    assert status == 200 and body["faces_obj"]["0"]["landmarks"] == []


def test_errors_and_credentials(api, faces_dir):
    img = b64file(faces_dir / "face_recognition/examples/obama.jpg")
    status, body, _ = detect(api)
    assert (status, body["error_code"]) == (400, 1)
    assert body["error_msg"] == "Either 'url' or 'img' parameter must be provided"
    status, body, _ = detect(api, url="https://example.com/media.mp4", img=img)  # url takes priority: off
    assert (status, body["error_code"], body["code"]) == (400, 1, "URL_INPUT_DISABLED")
    status, body, _ = detect(api, img=img, num_frames=0)
    assert (status, body["error_code"], body["code"]) == (400, 1, "INVALID_ARGUMENT")
    status, body, _ = detect(api, img="bm90IGFuIGltYWdl")
    assert (status, body["code"]) == (400, "INVALID_IMAGE")
    assert detect(api, {"x-api-key": api.key}, img=img)[0] == 200
    assert detect(api, {"Authorization": api.key}, img=img)[0] == 200  # the bare key
    # Authorization first: a wrong one is not rescued by a right x-api-key
    status, body, _ = detect(api, {"Authorization": "Bearer wrong", "x-api-key": api.key}, img=img)
    assert (status, body["error_code"], body["code"]) == (403, 1, "API_KEY_INVALID")
    status, body, _ = detect(api, {}, img=img)
    assert (status, body["error_code"], body["code"]) == (401, 1, "API_KEY_MISSING")


def test_url_inputs_off_make_no_connection(api, media_server):
    """The default configuration: every URL is refused before it is parsed, resolved or connected to."""
    for url in (media_server.url("/file/clip.mp4"), "http://10.0.0.1/a.mp4", "file:///etc/passwd", "nonsense"):
        status, body, _ = detect(api, url=url)
        assert (status, body["error_code"], body["code"]) == (400, 1, "URL_INPUT_DISABLED"), body
    assert media_server.connections == 0 and media_server.requests == []
