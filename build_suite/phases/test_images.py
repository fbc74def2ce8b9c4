"""Images phase: one test per service, so one failing build never hides the others."""


def test_image_built(images, service_name):
    result = images.get(service_name)
    assert result.status in ("built", "cached"), result.error
    assert result.image_id, f"image of service {service_name!r} has no id"
