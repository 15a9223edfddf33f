module transship.bench/gogzip

go 1.21
