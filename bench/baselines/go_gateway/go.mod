module bffbench/gogateway

go 1.19
