fn main() {
    println!("ringbroker");
}
