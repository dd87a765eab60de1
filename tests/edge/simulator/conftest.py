import pytest

from hipstride.edge.simulator import simulate


@pytest.fixture(scope="session")
def healthy():
    return simulate(30.0, profile="healthy", seed=3)


@pytest.fixture(scope="session")
def clean():
    """No noise, no bias, no strap error, identity mounting: signals equal the kinematics."""
    return simulate(20.0, seed=4, mounting="identity", imu_noise=0.0, gyro_bias_dps=0.0)
