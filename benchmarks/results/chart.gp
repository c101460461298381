# Written by mproc-bench; re-plot with: gnuplot chart.gp (in this directory)
set terminal pngcairo size 1400,800 noenhanced font 'sans,10'
set output "/tmp/fullbench/chart.png"
set title "mproc-bench: measured / goal, per repetition median (bar above 1 = goal met)\n2 CPUs (Intel(R) Xeon(R) Processor), 2 workers, 5 reps, 2026-12-01T10:50:09Z"
set logscale y
set yrange [0.110794:21.8057]
set xrange [-0.6:13.6]
set ylabel 'measured / goal  (goal / measured for <= goals), log scale'
set xtics rotate by -25 left nomirror
set grid ytics mytics
set mytics 10
set ytics ('0.01x' 0.01, '0.02x' 0.02, '0.05x' 0.05, '0.1x' 0.1, '0.2x' 0.2, '0.5x' 0.5, '1x' 1, '2x' 2, '5x' 5, '10x' 10, '20x' 20, '50x' 50, '100x' 100)
set bmargin 9
set rmargin 18
set style fill solid 0.85 border -1
set label 1 "worker death -> replacement running a task: 1415 us (median)" at graph 0.01, graph 0.96
plot "/tmp/fullbench/chart.dat" using 1:2:($1-0.35):($1+0.35):(1):2:3:xtic(4) with boxxyerror lc rgb variable notitle, \
     '' using 1:6:5 with labels font ',10' notitle, \
     '' using 1:8:7 with labels font ',8' tc rgb '#555555' notitle, \
     1 with lines dt 2 lw 2 lc rgb 'black' title 'goal'
