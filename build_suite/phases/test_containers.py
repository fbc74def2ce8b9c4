"""Containers phase: every service starts on the build's private network and becomes healthy."""

import pytest


@pytest.mark.xdist_group("stack")
def test_container_healthy(containers, service_name):
    outcome = containers.outcomes[service_name]
    assert outcome.status == "healthy", outcome.error


@pytest.mark.xdist_group("stack")
def test_images_carry_build_labels(containers, images, engine, build_state):
    build_id = build_state.record.build_id
    for name, result in images.all().items():
        if not result.image_id:
            continue  # test_image_built reports the failed build of this service
        image = engine.client.images.get(result.image_id)
        labels = image.labels or {}
        assert labels.get("build-suite.build-id") == build_id, f"image of {name!r} lacks this build's label"
        assert labels.get("build-suite.service") == name


@pytest.mark.xdist_group("stack")
def test_every_container_was_healthy(containers):
    unhealthy = {name: outcome.status for name, outcome in containers.outcomes.items() if outcome.status != "healthy"}
    assert not unhealthy, f"services not healthy: {unhealthy}"
