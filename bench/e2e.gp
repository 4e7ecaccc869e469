# gnuplot -e "datafile='plot.dat'; outfile='e2e.png'" e2e.gp
# Fan-out saturation (bench/run-e2e.sh): CPU per delivery and deliveries/s
# against K, roomcast (rc-chat) and the Node reference.
set terminal pngcairo size 1100,420 font ",10"
set output outfile
set multiplot layout 1,2 title "Fan-out to one room, messages published into Redis (2 shared cores)"
set logscale x
set xrange [70:7000]
set xtics ("100" 100, "1,000" 1000, "5,000" 5000)
set xlabel "streams in the room (K)"
set grid
set key top left
set ylabel "server CPU µs per delivery"
set logscale y
plot datafile using 1:2 with linespoints lw 2 pt 7 title "roomcast (rc-chat)", \
     datafile using 1:3 with linespoints lw 2 pt 5 title "Node reference"
unset logscale y
set ylabel "deliveries per second"
set format y "%.1s%c"
plot datafile using 1:4 with linespoints lw 2 pt 7 title "roomcast (rc-chat)", \
     datafile using 1:5 with linespoints lw 2 pt 5 title "Node reference"
unset multiplot
