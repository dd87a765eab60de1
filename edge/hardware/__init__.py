"""Drivers for the chips a HipStride station reads, and emulations of them.

``bus`` wraps the three Linux interfaces the drivers need (I2C through smbus2, SPI through
spidev, a data-ready GPIO through libgpiod v2); each driver module speaks one chip family's
register map through them: :mod:`.mpu6xxx` and :mod:`.icm20948` (IMUs with a FIFO on I2C),
:mod:`.ads1299` and :mod:`.ads131m04` (24-bit simultaneous-sampling EMG ADCs read on DRDY) and
:mod:`.mcp3008` (10-bit ADC for envelope-output EMG modules). :mod:`.emulated` implements the
same chips behind the same bus API so every driver runs here without hardware, on a real or a
virtual :mod:`.clock`. Nothing here imports smbus2, spidev or gpiod until a real bus is opened.
"""
